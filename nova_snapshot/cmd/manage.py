"""nova-snapshot-manage: operator commands.

    nova-snapshot-manage [--config-file F] [--config-dir D] db sync
    nova-snapshot-manage [--config-file F] [--config-dir D] db version

argparse reads the command; the config options are handed on unchanged to
``conf.new_conf`` so oslo.config keeps owning --config-file/--config-dir.
"""

import argparse
import sys

from nova_snapshot import conf as ns_conf
from nova_snapshot.db import api as db_api


def _db_sync(database):
    database.create_schema()
    print('Database is at revision %s' % database.schema_version())


def _db_version(database):
    print(database.schema_version() or 'None (no schema yet)')


COMMANDS = {('db', 'sync'): _db_sync, ('db', 'version'): _db_version}


def _parser():
    parser = argparse.ArgumentParser(prog='nova-snapshot-manage')
    parser.add_argument('--config-file', action='append', default=[],
                        metavar='PATH')
    parser.add_argument('--config-dir', action='append', default=[],
                        metavar='DIR')
    parser.add_argument('category', choices=['db'])
    parser.add_argument('action', choices=['sync', 'version'])
    return parser


def main(argv=None):
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    oslo_args = []
    for path in args.config_file:
        oslo_args += ['--config-file', path]
    for path in args.config_dir:
        oslo_args += ['--config-dir', path]
    conf = ns_conf.new_conf(oslo_args)
    database = db_api.Database(conf)
    try:
        COMMANDS[(args.category, args.action)](database)
    finally:
        database.dispose()
    return 0


if __name__ == '__main__':
    sys.exit(main())
