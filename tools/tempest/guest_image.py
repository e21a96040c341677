"""The tiny test guest in the Keystone-mode Glance, public, for tempest.

Uploaded as the stack's admin through the catalog's image endpoint, as
Nova's AMI-style trio (kernel ``aki``, initramfs ``ari``, qcow2 disk that
names both), the way tests/functional/fixtures/guest.upload_tiny_guest
does for the no-auth Glance. The disk image's name carries a digest of the
three files, so a later run reuses it while the guest build is unchanged
and replaces it when the guest is rebuilt.
"""

import hashlib
import os

from keystoneauth1 import adapter as ks_adapter

NAME = 'tempest-ns-guest'
TIMEOUT = 60
FILES = (('kernel', 'aki', 'aki'),
         ('initramfs.gz', 'ari', 'ari'),
         ('disk.qcow2', 'qcow2', 'bare'))


def _digest(guest_dir):
    digest = hashlib.sha256()
    for name, _, _ in FILES:
        with open(os.path.join(guest_dir, name), 'rb') as data:
            for chunk in iter(lambda: data.read(1 << 20), b''):
                digest.update(chunk)
    return digest.hexdigest()[:12]


class _Glance(object):

    def __init__(self, session, region):
        self.api = ks_adapter.Adapter(session, service_type='image',
                                      interface='public', region_name=region)

    def find(self, **filters):
        return self.api.get('/v2/images', params=filters,
                            timeout=TIMEOUT).json()['images']

    def create(self, name, disk_format, container_format, path, **props):
        image = self.api.post('/v2/images', timeout=TIMEOUT, json=dict(
            name=name, disk_format=disk_format,
            container_format=container_format, visibility='public',
            **props)).json()
        with open(path, 'rb') as data:
            self.api.put('/v2/images/%s/file' % image['id'], data=data,
                         timeout=TIMEOUT * 5, headers={
                             'Content-Type': 'application/octet-stream',
                             'Content-Length': str(os.path.getsize(path))})
        image = self.api.get('/v2/images/%s' % image['id'],
                             timeout=TIMEOUT).json()
        if image['status'] != 'active':
            raise RuntimeError('image %s is %s after its upload'
                               % (image['id'], image['status']))
        return image

    def delete(self, image_id):
        self.api.delete('/v2/images/%s' % image_id, timeout=TIMEOUT,
                        raise_exc=False)


def ensure_guest_images(session, region, guest_dir, log=print):
    """Return the ids of two public disk images of the current guest build.

    tempest wants two distinct images (``image_ref``, ``image_ref_alt``),
    e.g. to filter servers by image; both are the same guest disk.
    """
    glance = _Glance(session, region)
    name = '%s-%s' % (NAME, _digest(guest_dir))
    names = (name, name + '-alt')
    found = {}
    for image_name in names:
        for image in glance.find(name=image_name, status='active'):
            if image.get('visibility') == 'public':
                found[image_name] = image['id']
    if len(found) == len(names):
        return tuple(found[n] for n in names)
    ids = {}
    for (filename, disk_format, container_format), suffix in zip(
            FILES, ('kernel', 'initramfs', None)):
        path = os.path.join(guest_dir, filename)
        if suffix is not None:
            ids[suffix] = glance.create('%s-%s' % (name, suffix), disk_format,
                                        container_format, path)['id']
            continue
        for image_name in names:
            ids[image_name] = glance.create(
                image_name, disk_format, container_format, path,
                kernel_id=ids['kernel'], ramdisk_id=ids['initramfs'],
                os_command_line='console=ttyS0')['id']
            log('uploaded %s (%s)' % (image_name, ids[image_name]))
    # Earlier builds' images (and halves of failed uploads) are not needed.
    for image in glance.find(visibility='public'):
        if ((image.get('name') or '').startswith(NAME + '-')
                and image['id'] not in ids.values()):
            glance.delete(image['id'])
            log('deleted %s (%s)' % (image['name'], image['id']))
    return tuple(ids[n] for n in names)
