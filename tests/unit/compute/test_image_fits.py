"""ComputeAPI._check_image_fits: Nova's flavor/image size rules (400s)."""

import unittest

from nova_snapshot.compute import api as compute_api
from nova_snapshot import exception

GiB = 1024 ** 3
FLAVOR = {'memory_mb': 128, 'root_gb': 1}


def image(**values):
    base = {'id': 'img', 'status': 'active', 'min_ram': 0, 'min_disk': 0}
    base.update(values)
    return base


class CheckImageFitsTest(unittest.TestCase):

    check = staticmethod(compute_api.ComputeAPI._check_image_fits)

    def assert_refused(self, exc_class, img, flavor=FLAVOR):
        with self.assertRaises(exc_class) as cm:
            self.check(img, flavor)
        self.assertEqual(400, cm.exception.code)
        return cm.exception.format_message()

    def test_fits(self):
        self.check(image(size=GiB, virtual_size=GiB, min_disk=1), FLAVOR)
        # Glance did not compute a virtual size (None): nothing to check.
        self.check(image(size=1024, virtual_size=None), FLAVOR)

    def test_file_larger_than_root_disk(self):
        message = self.assert_refused(exception.FlavorDiskSmallerThanImage,
                                      image(size=GiB + 1))
        self.assertEqual(
            "Flavor's disk is too small for requested image. Flavor disk is "
            "1073741824 bytes, image is 1073741825 bytes.", message)

    def test_virtual_size_larger_than_root_disk(self):
        message = self.assert_refused(
            exception.FlavorDiskSmallerThanImage,
            image(size=262144, virtual_size=5 * GiB))
        self.assertIn('image is 5368709120 bytes', message)

    def test_min_disk(self):
        message = self.assert_refused(exception.FlavorDiskSmallerThanMinDisk,
                                      image(min_disk=2))
        self.assertEqual(
            "Flavor's disk is smaller than the minimum size specified in "
            "image metadata. Flavor disk is 1073741824 bytes, minimum size "
            "is 2147483648 bytes.", message)

    def test_min_ram(self):
        message = self.assert_refused(exception.FlavorMemoryTooSmall,
                                      image(min_ram=256))
        self.assertEqual("Flavor's memory is too small for requested image.",
                         message)

    def test_root_gb_zero_is_not_checked(self):
        self.check(image(size=8 * GiB, virtual_size=80 * GiB, min_disk=20),
                   {'memory_mb': 128, 'root_gb': 0})

    def test_not_active(self):
        self.assert_refused(exception.ImageUnacceptable,
                            image(status='queued'))
