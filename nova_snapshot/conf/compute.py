import socket

from oslo_config import cfg

OPTS = [
    cfg.StrOpt('host', default=socket.gethostname(), sample_default='<hostname>',
               help='Name of this compute host; the API routes RPC casts for '
                    'an instance to the compute service with this name.'),
    cfg.StrOpt('state_path', default='/var/lib/nova-snapshot',
               help='Top directory for the service state.'),
    cfg.StrOpt('instances_path', default='$state_path/instances',
               help='Where instance disks and console logs live.'),
]

COMPUTE_GROUP = 'compute'
COMPUTE_OPTS = [
    cfg.StrOpt('compute_driver', default='libvirt',
               help='Name of the virt driver in the nova_snapshot.virt.drivers '
                    'entry-point namespace.'),
    cfg.IntOpt('max_concurrent_snapshots', default=5, min=1,
               help='Snapshots one compute service runs at once; more wait.'),
    cfg.FloatOpt('progress_interval', default=2.0, min=0.1,
                 help='Seconds between progress updates written to the '
                      'instance while a snapshot runs.'),
    cfg.StrOpt('default_schedule_host',
               help='Host that new servers are placed on. Unset: the only '
                    'compute service that is up (error if several).'),
    cfg.ListOpt('non_inheritable_image_properties',
                default=['cache_in_nova', 'bittorrent'],
                help='Base-image properties a snapshot does not inherit '
                     '(on top of the built-in signature, encryption and '
                     'os_glance* keys).'),
    # Volume-backed servers
    cfg.FloatOpt('quiesce_deadline', default=10.0, min=0.5,
                 help='Longest time a guest stays frozen (guest-agent '
                      'fsfreeze) or paused for a volume snapshot; a watchdog '
                      'outside the service thaws it at this deadline even if '
                      'the service dies.'),
    cfg.BoolOpt('pause_for_volume_cut', default=True,
                help='When a running guest cannot be quiesced, pause its '
                     'vCPUs while the volume snapshots are cut, so that the '
                     'volumes are captured at one point in time.'),
    cfg.FloatOpt('snapshot_poll_interval', default=0.05, min=0.01,
                 help='Seconds between Cinder snapshot status polls while '
                      'the guest is frozen.'),
    cfg.IntOpt('volume_snapshot_timeout', default=600, min=1,
               help='Seconds to wait for every Cinder snapshot of a '
                    'volume-backed createImage to become available.'),
    cfg.IntOpt('volume_snapshot_rpc_timeout', default=900, min=1,
               help='Seconds the API waits for the compute service to '
                    'finish a volume-backed snapshot (an RPC call); longer '
                    'than quiesce_deadline + volume_snapshot_timeout.'),
    cfg.IntOpt('volume_create_timeout', default=120, min=1,
               help='Base seconds to wait for a new volume to become '
                    'available; volume_create_timeout_per_gb is added per '
                    'GiB, since a volume from an image copies its data.'),
    cfg.IntOpt('volume_create_timeout_per_gb', default=30, min=0,
               help='Extra seconds per GiB of a volume being created.'),
]


def register_opts(conf):
    conf.register_opts(OPTS)
    conf.register_opts(COMPUTE_OPTS, group=COMPUTE_GROUP)


def list_opts():
    return {'DEFAULT': OPTS, COMPUTE_GROUP: COMPUTE_OPTS}
