"""The marker a running snapshot leaves next to the instance's disk.

While a capture runs, ``<instances_path>/<uuid>/snapshot-in-progress`` says
what was done to the guest, so that a compute service restarting after a
crash can put it back (:func:`nova_snapshot.virt.libvirt.snapshot.repair`).
"""

import json
import os
import uuid as uuidlib

MARKER_NAME = 'snapshot-in-progress'


def instance_dir(conf, instance):
    # The UUID forms a path: make sure it is one and nothing else.
    return os.path.join(conf.instances_path,
                        str(uuidlib.UUID(instance['uuid'])))


def marker_path(conf, instance):
    return os.path.join(instance_dir(conf, instance), MARKER_NAME)


def write(conf, instance, record):
    """Atomically write ``record`` (a JSON-able dict) as the marker."""
    path = marker_path(conf, instance)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(record, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read(conf, instance):
    """Return the marker's dict, or None when there is none (or it is torn)."""
    try:
        with open(marker_path(conf, instance)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except ValueError:
        # A crash between open and fsync: no record of what was done.
        return {}


def remove(conf, instance):
    for path in (marker_path(conf, instance),
                 marker_path(conf, instance) + '.tmp'):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
