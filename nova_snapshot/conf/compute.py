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
    # Capacity (Nova's names and meanings): read by the compute service
    # and reported with its heartbeat, so each host has its own.
    cfg.FloatOpt('cpu_allocation_ratio', default=16.0, min=0.0,
                 help='Virtual CPUs per physical CPU this host accepts.'),
    cfg.FloatOpt('ram_allocation_ratio', default=1.5, min=0.0,
                 help='Virtual RAM per physical RAM this host accepts.'),
    cfg.FloatOpt('disk_allocation_ratio', default=1.0, min=0.0,
                 help='Virtual disk per physical disk of instances_path this '
                      'host accepts.'),
    cfg.IntOpt('reserved_host_memory_mb', default=512, min=0,
               help='RAM (MiB) kept for the host, never given to servers.'),
    cfg.IntOpt('reserved_host_disk_mb', default=0, min=0,
               help='Disk (MiB) of instances_path kept for the host.'),
    cfg.IntOpt('reserved_host_cpus', default=0, min=0,
               help='Physical CPUs kept for the host.'),
    cfg.IntOpt('report_interval', default=10, min=1,
               help='Seconds between the heartbeats (with the capacity '
                    'report) of a compute service.'),
    cfg.IntOpt('service_down_time', default=60, min=1,
               help='A service whose last heartbeat is older than this many '
                    'seconds is down: not scheduled to, and its servers are '
                    'deleted locally. Longer than report_interval.'),
    cfg.StrOpt('default_availability_zone', default='nova',
               help='The availability zone of every compute host (one zone: '
                    'the zone part of "zone:host" must name it).'),
    # Shelve (Nova's names, defaults and meanings).
    cfg.IntOpt('shelved_offload_time', default=0, min=-1,
               help='Seconds a shelved server stays on its host before the '
                    'compute service offloads it (its guest destroyed, its '
                    'host\'s resources given back). 0: offload at once, as '
                    'part of the shelve; -1: never offload by itself (an '
                    'admin\'s shelveOffload still does).'),
    cfg.IntOpt('shelved_poll_interval', default=3600, min=-1,
               help='Seconds between the compute service\'s checks for '
                    'shelved servers older than shelved_offload_time; 0 or '
                    '-1 turns the check off.'),
    # Soft delete (Nova's name, default and meaning; doc/soft-delete.rst).
    cfg.IntOpt('reclaim_instance_interval', default=0, min=0,
               help='Seconds a deleted server is kept before it is deleted '
                    'for good. 0: DELETE deletes at once. Above 0: DELETE '
                    'soft-deletes (status SOFT_DELETED: the guest is powered '
                    'off, its disks and volumes kept) and the "restore" '
                    'action brings it back; each compute service reclaims '
                    'its servers soft-deleted longer than this, checking '
                    'every reclaim_instance_interval seconds, and '
                    '"forceDelete" deletes one at once. Set the same value '
                    'on the API and the compute services.'),
]

FILTER_SCHEDULER_GROUP = 'filter_scheduler'
FILTER_SCHEDULER_OPTS = [
    cfg.FloatOpt('ram_weight_multiplier', default=1.0,
                 help='Weight of free RAM when choosing among the hosts that '
                      'fit: positive spreads servers over hosts (most free '
                      'RAM first), negative packs them (least free RAM '
                      'first), 0 ignores RAM.'),
    cfg.IntOpt('host_subset_size', default=1, min=1,
               help='Pick at random among this many best-weighed hosts, so '
                    'that bursts of concurrent requests do not all race '
                    'for the same host.'),
]

# The fake driver's own options (snapshot holds) join this group when it
# loads; the capacity is read by the service for its heartbeat.
FAKE_CAPACITY_GROUP = 'fake'
FAKE_CAPACITY_OPTS = [
    cfg.IntOpt('vcpus', default=1000, min=0,
               help='vCPUs the fake driver reports (compute_driver = fake).'),
    cfg.IntOpt('memory_mb', default=800000, min=0,
               help='RAM (MiB) the fake driver reports.'),
    cfg.IntOpt('local_gb', default=600000, min=0,
               help='Disk (GiB) the fake driver reports.'),
]

COMPUTE_GROUP = 'compute'
COMPUTE_OPTS = [
    cfg.StrOpt('compute_driver', default='libvirt',
               help='Name of the virt driver in the nova_snapshot.virt.drivers '
                    'entry-point namespace.'),
    cfg.IntOpt('max_concurrent_snapshots', default=5, min=1,
               help='Snapshots one compute service runs at once; more wait.'),
    cfg.IntOpt('snapshot_wait_timeout', default=300, min=1,
               help='Longest time a createImage of an image-backed server '
                    'waits on its compute host (queued, for the server\'s '
                    'lock, then for one of the max_concurrent_snapshots '
                    'slots) before it fails with a fault, its image deleted '
                    'and the server released. A volume-backed createImage '
                    'waits at most volume_snapshot_rpc_timeout less '
                    'quiesce_deadline and volume_snapshot_timeout.'),
    cfg.IntOpt('db_write_retry_timeout', default=60, min=0,
               help='Seconds the write that releases a server after a '
                    'finished snapshot upload is retried on database errors '
                    '(a locked SQLite file, a PostgreSQL restart). If it '
                    'still fails the image is kept and the periodic '
                    'reconciler releases the server.'),
    cfg.IntOpt('hypervisor_retry_timeout', default=60, min=0,
               help='Seconds a server delete on a compute host retries, '
                    'with backoff, while the hypervisor cannot be reached '
                    '(libvirtd restarting or down). A delete that still '
                    'cannot reach it keeps the server deleting (not ERROR), '
                    'and the periodic reconciler finishes it once the '
                    'hypervisor is back.'),
    cfg.FloatOpt('progress_interval', default=2.0, min=0.1,
                 help='Seconds between progress updates written to the '
                      'instance while a snapshot runs.'),
    cfg.StrOpt('default_schedule_host',
               deprecated_for_removal=True,
               deprecated_reason='The scheduler places servers on the '
                                 'enabled, live hosts that fit; an admin '
                                 'targets one host with availability_zone '
                                 '"zone:host".',
               help='Host that every new server is placed on, without '
                    'filters or claims. Unset (the default): the scheduler '
                    'chooses.'),
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
    cfg.IntOpt('reimage_timeout', default=60, min=1,
               help='Base seconds a rebuild of a volume-backed server '
                    '(microversion 2.93) waits for Cinder to re-image its '
                    'root volume; reimage_timeout_per_gb is added per GiB '
                    'of the volume (Cinder writes all of it).'),
    cfg.IntOpt('reimage_timeout_per_gb', default=20, min=1,
               help='Extra seconds per GiB of the root volume being '
                    're-imaged (Nova\'s [DEFAULT] reimage_timeout_per_gb).'),
]


def register_opts(conf):
    conf.register_opts(OPTS)
    conf.register_opts(COMPUTE_OPTS, group=COMPUTE_GROUP)
    conf.register_opts(FILTER_SCHEDULER_OPTS, group=FILTER_SCHEDULER_GROUP)
    conf.register_opts(FAKE_CAPACITY_OPTS, group=FAKE_CAPACITY_GROUP)


def list_opts():
    return {'DEFAULT': OPTS, COMPUTE_GROUP: COMPUTE_OPTS,
            FILTER_SCHEDULER_GROUP: FILTER_SCHEDULER_OPTS,
            FAKE_CAPACITY_GROUP: FAKE_CAPACITY_OPTS}
