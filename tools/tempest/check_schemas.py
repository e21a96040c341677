"""Check compute API bodies against tempest's response schemas.

Run with tempest's own Python (``.stack/tempest-venv/bin/python``): it
reads JSON on stdin, ``[[version, client, schema, status, body], ...]``
where ``client`` is one of CLIENTS and ``schema`` the name tempest's
client validates that call with, picks the schema module tempest uses at
that microversion (the client's ``schema_versions_info``) and prints one
line per body that does not validate. Exits 1 if any does not.
tests/functional/test_tempest_schemas.py feeds it.
"""

import json
import sys

from tempest.lib.common import api_version_request
from tempest.lib.common import rest_client
from tempest.lib.services.compute import flavors_client
from tempest.lib.services.compute import keypairs_client
from tempest.lib.services.compute import servers_client
from tempest.lib.services.compute import services_client

CLIENTS = {
    'servers': servers_client.ServersClient,
    'flavors': flavors_client.FlavorsClient,
    'services': services_client.ServicesClient,
    'keypairs': keypairs_client.KeyPairsClient,
}


def _module(client, version):
    wanted = api_version_request.APIVersionRequest(version)
    for info in client.schema_versions_info:
        low, high = info['min'], info['max']
        if ((low is None or
             wanted >= api_version_request.APIVersionRequest(low)) and
                (high is None or
                 wanted <= api_version_request.APIVersionRequest(high))):
            return info['schema']
    raise LookupError('no schema module for %s' % version)


class _Response(dict):
    status = None


def main():
    failures = 0
    for version, client, name, status, body in json.load(sys.stdin):
        schema = dict(getattr(_module(CLIENTS[client], version), name))
        response = _Response()
        response.status = status
        try:
            rest_client.RestClient.validate_response(schema, response, body)
        except Exception as exc:  # noqa: BLE001 - reported, then counted
            failures += 1
            print('%s %s.%s: %s' % (version, client, name,
                                    ' '.join(str(exc).split())[:600]))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
