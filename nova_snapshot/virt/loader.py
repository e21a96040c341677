"""Load the configured compute driver from its entry-point namespace."""

from stevedore import driver as stevedore_driver

from nova_snapshot import exception

NAMESPACE = 'nova_snapshot.virt.drivers'


def load_compute_driver(conf, image_api, volume_api=None, name=None):
    name = name or conf.compute.compute_driver
    try:
        manager = stevedore_driver.DriverManager(
            namespace=NAMESPACE, name=name, invoke_on_load=True,
            invoke_args=(conf, image_api), invoke_kwds={'volume_api': volume_api})
    except Exception as exc:  # stevedore raises several unrelated types
        raise exception.DriverLoadError(driver=name, reason=exc)
    return manager.driver
