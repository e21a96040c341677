"""Notifications the compute service emits.

Event types follow Nova's versioned notifications
(``instance.snapshot.start``, ``instance.snapshot.end``,
``instance.snapshot.error``, ``instance.<action>.*``) but the payload is a
plain dict, not an ovo: consumers of this service read JSON. Sending is
best effort: a broken notification bus must never fail or roll back the
operation it reports.
"""

import logging

LOG = logging.getLogger(__name__)

PUBLISHER_PREFIX = 'nova-snapshot-compute'


def publisher_id(host):
    return '%s:%s' % (PUBLISHER_PREFIX, host)


def fault_payload(exc):
    """A fault dict safe to publish: class and message, no traceback."""
    if exc is None:
        return None
    message = getattr(exc, 'format_message', None)
    message = message() if callable(message) else str(exc)
    return {'exception': type(exc).__name__, 'exception_message': message}


def instance_payload(instance, **extra):
    payload = {
        'instance_uuid': instance['uuid'],
        'project_id': instance.get('project_id'),
        'user_id': instance.get('user_id'),
        'host': instance.get('host'),
        'vm_state': instance.get('vm_state'),
        'task_state': instance.get('task_state'),
        'power_state': instance.get('power_state'),
    }
    payload.update(extra)
    return payload


def _send(notifier, context, event_type, payload, error=False):
    if notifier is None:
        return
    try:
        if error:
            notifier.error(context, event_type, payload)
        else:
            notifier.info(context, event_type, payload)
    except Exception:  # the bus is not part of the operation
        LOG.warning('Could not send notification %s', event_type,
                    exc_info=True)


def notify_about_instance_action(notifier, context, instance, action, phase,
                                 exc=None, **extra):
    """Send ``instance.<action>.<phase>``; phase is start, end or error."""
    payload = instance_payload(instance, **extra)
    if phase == 'error':
        payload['fault'] = fault_payload(exc)
    _send(notifier, context, 'instance.%s.%s' % (action, phase), payload,
          error=(phase == 'error'))


def notify_about_instance_snapshot(notifier, context, instance, image_id,
                                   phase, exc=None):
    notify_about_instance_action(notifier, context, instance, 'snapshot',
                                 phase, exc=exc, snapshot_image_id=image_id)
