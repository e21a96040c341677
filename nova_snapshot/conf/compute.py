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
]


def register_opts(conf):
    conf.register_opts(OPTS)
    conf.register_opts(COMPUTE_OPTS, group=COMPUTE_GROUP)


def list_opts():
    return {'DEFAULT': OPTS, COMPUTE_GROUP: COMPUTE_OPTS}
