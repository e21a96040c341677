"""``[reconciler]``: the periodic repair pass of each compute service.

Start-up repairs run once; anything a crash, a lost cast or a failed
clean-up leaves while the service keeps running is found by this pass
(:mod:`nova_snapshot.compute.reconciler`). The running-deleted options
keep Nova's names and group (``[DEFAULT]``) and meaning.
"""

from oslo_config import cfg

GROUP = 'reconciler'

OPTS = [
    cfg.IntOpt('interval', default=60, min=0,
               help='Seconds between two reconciler passes on a compute '
                    'host; 0 disables the reconciler (start-up repairs '
                    'still run). Nova runs its periodic tasks every 60 s.'),
    cfg.FloatOpt('startup_delay', default=30.0, min=0.0,
                 help='The first pass runs a random time between half of '
                      'this and this many seconds after the service starts '
                      '(never later than interval): soon, but after the '
                      'start-up repairs and the first casts, and not at '
                      'the same moment on every host of a restarted cloud.'),
    cfg.IntOpt('task_state_grace', default=60, min=1,
               help='An image_* task_state that no snapshot of this '
                    'service owns is released only once the instance has '
                    'not changed for this many seconds. The API sets '
                    'image_snapshot_pending before its cast arrives; a cast '
                    'normally arrives within a second, and a lost one '
                    'keeps the server locked for at most this plus '
                    'interval (2 minutes by default). A cast that arrives '
                    'after the release finds the state changed and fails '
                    'the request cleanly (its image deleted, a fault).'),
    cfg.IntOpt('orphan_grace', default=600, min=1,
               help='Unfinished snapshot images (queued or saving) and '
                    'Cinder snapshots tagged with a request are deleted '
                    'only when older than this many seconds and no running '
                    'snapshot here refers to them. Never less than '
                    '[compute] volume_snapshot_timeout plus a minute: a '
                    'volume-backed request makes its image only once every '
                    'Cinder snapshot is available.'),
    cfg.IntOpt('pass_timeout', default=300, min=1,
               help='A pass starts no new repair after this many seconds '
                    '(the rest waits for the next pass). Each call to '
                    'Glance, Cinder or the guest agent is bounded by its '
                    'own timeout, so one slow service delays a pass, never '
                    'stops the loop.'),
    cfg.IntOpt('agent_timeout', default=5, min=1,
               help='Seconds the reconciler waits for a guest agent\'s '
                    'answer to guest-fsfreeze-status; a guest that does not '
                    'answer is asked again at the next pass.'),
]

# Nova's [DEFAULT] options of its _cleanup_running_deleted_instances task,
# same names, defaults and meanings. The check runs at every reconciler
# pass (Nova's running_deleted_instance_poll_interval is not used).
RUNNING_DELETED_OPTS = [
    cfg.StrOpt('running_deleted_instance_action', default='reap',
               choices=('noop', 'log', 'shutdown', 'reap'),
               help='What to do with a guest that runs on this host while '
                    'its instance is deleted in the database (e.g. deleted '
                    'while the host missed its heartbeats): reap (power it '
                    'off and delete its domain and local disks; Nova\'s '
                    'default), shutdown (power it off, keep it), log (a '
                    'warning at every pass) or noop.'),
    cfg.IntOpt('running_deleted_instance_timeout', default=0, min=0,
               help='Seconds after its deletion in the database before such '
                    'a guest is acted on (Nova\'s default 0: at once).'),
]


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)
    conf.register_opts(RUNNING_DELETED_OPTS)


def list_opts():
    return {GROUP: OPTS, 'DEFAULT': RUNNING_DELETED_OPTS}
