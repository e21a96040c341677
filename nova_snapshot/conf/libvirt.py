from oslo_config import cfg

GROUP = 'libvirt'

OPTS = [
    cfg.StrOpt('connection_uri', default='qemu:///system',
               help='libvirt URI of the local hypervisor.'),
    cfg.StrOpt('virt_type', default='qemu', choices=('qemu', 'kvm'),
               help='Domain type: "qemu" (TCG, works everywhere) or "kvm".'),
    cfg.BoolOpt('live_snapshot', default=True,
                help='Capture the root disk while the guest runs (libvirt '
                     'push-mode backup; vCPUs never stop). False: suspend '
                     'the guest (managed save) while the disk is copied.'),
    cfg.StrOpt('snapshot_image_format', default='qcow2',
               choices=('qcow2', 'raw'),
               help='disk_format of the images that snapshots upload.'),
    cfg.StrOpt('snapshots_directory', default='$instances_path/snapshots',
               help='Scratch space for point-in-time copies before upload.'),
]


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return {GROUP: OPTS}
