"""nova-snapshot-manage: operator commands.

    nova-snapshot-manage [--config-file F] [--config-dir D] db sync
    nova-snapshot-manage [--config-file F] [--config-dir D] db version
    nova-snapshot-manage [--config-file F] service list
    nova-snapshot-manage [--config-file F] service disable HOST [--reason R]
    nova-snapshot-manage [--config-file F] service enable HOST

``service disable`` stops new servers from being scheduled to a compute
host (its servers keep running: drain it, then stop it); ``enable`` undoes
it. They act on the database directly, as os-services does through the API.

argparse reads the command; the config options are handed on unchanged to
``conf.new_conf`` so oslo.config keeps owning --config-file/--config-dir.
"""

import argparse
import sys

from nova_snapshot.api import views
from nova_snapshot.compute import host_api as compute_host_api
from nova_snapshot import conf as ns_conf
from nova_snapshot.db import api as db_api
from nova_snapshot import exception

SERVICE_COLUMNS = ('Id', 'Binary', 'Host', 'Zone', 'Status', 'State',
                   'Updated At', 'Disabled Reason')


def _db_sync(conf, database, args):
    database.create_schema()
    print('Database is at revision %s' % database.schema_version())


def _db_version(conf, database, args):
    print(database.schema_version() or 'None (no schema yet)')


def _service_list(conf, database, args):
    services = compute_host_api.HostAPI(conf, database).service_get_all()
    rows = [SERVICE_COLUMNS] + [(
        str(s['id']), s['binary'] or '', s['host'], s['zone'],
        'disabled' if s['disabled'] else 'enabled',
        'up' if s['up'] else 'down',
        views.precise_time(s.get('updated_at')) or '-',
        s.get('disabled_reason') or '-') for s in services]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print('  '.join(cell.ljust(width)
                        for cell, width in zip(row, widths)).rstrip())


def _set_status(conf, database, args, values, status):
    host_api = compute_host_api.HostAPI(conf, database)
    host_api.service_update_by_host_and_binary(
        args.host, compute_host_api.COMPUTE_BINARY, values)
    print('Compute service on %s is %s' % (args.host, status))


def _service_disable(conf, database, args):
    _set_status(conf, database, args,
                {'disabled': True, 'disabled_reason': args.reason},
                'disabled' + (' (%s)' % args.reason if args.reason else ''))


def _service_enable(conf, database, args):
    _set_status(conf, database, args,
                {'disabled': False, 'disabled_reason': None}, 'enabled')


COMMANDS = {('db', 'sync'): _db_sync, ('db', 'version'): _db_version,
            ('service', 'list'): _service_list,
            ('service', 'disable'): _service_disable,
            ('service', 'enable'): _service_enable}


def _parser():
    parser = argparse.ArgumentParser(prog='nova-snapshot-manage')
    parser.add_argument('--config-file', action='append', default=[],
                        metavar='PATH')
    parser.add_argument('--config-dir', action='append', default=[],
                        metavar='DIR')
    categories = parser.add_subparsers(dest='category', required=True)
    db = categories.add_parser('db').add_subparsers(dest='action',
                                                    required=True)
    db.add_parser('sync')
    db.add_parser('version')
    service = categories.add_parser('service').add_subparsers(
        dest='action', required=True)
    service.add_parser('list')
    disable = service.add_parser('disable')
    disable.add_argument('host')
    disable.add_argument('--reason', help='Why (shown by os-services).')
    enable = service.add_parser('enable')
    enable.add_argument('host')
    return parser


def main(argv=None):
    args, rest = _parser().parse_known_args(
        sys.argv[1:] if argv is None else argv)
    # Options given after the command (``db sync --config-file F``).
    leftover = _parser_for_options().parse_args(rest)
    oslo_args = []
    for path in args.config_file + leftover.config_file:
        oslo_args += ['--config-file', path]
    for path in args.config_dir + leftover.config_dir:
        oslo_args += ['--config-dir', path]
    conf = ns_conf.new_conf(oslo_args)
    database = db_api.Database(conf)
    try:
        COMMANDS[(args.category, args.action)](conf, database, args)
    except (exception.HostBinaryNotFound, exception.Invalid) as exc:
        print(exc.format_message(), file=sys.stderr)
        return 1
    finally:
        database.dispose()
    return 0


def _parser_for_options():
    parser = argparse.ArgumentParser(prog='nova-snapshot-manage')
    parser.add_argument('--config-file', action='append', default=[],
                        metavar='PATH')
    parser.add_argument('--config-dir', action='append', default=[],
                        metavar='DIR')
    return parser


if __name__ == '__main__':
    sys.exit(main())
