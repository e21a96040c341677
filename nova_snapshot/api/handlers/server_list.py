"""GET /servers and /servers/detail: Nova's filters, sorting and paging.

The order of the steps is Nova's (``ServersController._get_servers``):
validate the query, drop what the caller may not filter by, turn status
into states, parse changes-since, decide deleted and all_tenants, then
sort and page. One page costs a fixed number of SQL statements
(``Database.instance_list``), however many servers it holds.
"""

import collections
from urllib import parse

from oslo_utils import strutils
from oslo_utils import timeutils

from nova_snapshot.api import faults
from nova_snapshot.api.schemas import server_list as schema
from nova_snapshot.api import util
from nova_snapshot.api import validation
from nova_snapshot.api import views
from nova_snapshot.compute import flavors
from nova_snapshot.compute import vm_states
from nova_snapshot.db import api as db_api
from nova_snapshot.db import models
from nova_snapshot import exception
from nova_snapshot.policies import servers as policies

# Nova's sort keys that name a column here under another name.
_SORT_COLUMN = {'display_name': 'name', 'hostname': 'name', 'node': 'host',
                'display_description': 'description'}
_ADMIN_SORT_KEYS = ('host', 'node')
# Filters that no server here can match: it has no addresses and no tags.
_NEVER_MATCH = ('ip', 'ip6', 'tags', 'tags-any')
# Exact-match filters an admin may use, and the column each one names.
_ADMIN_EXACT = {'host': 'host', 'user_id': 'user_id', 'uuid': 'uuid',
                'image_ref': 'image_ref'}


class _Empty(Exception):
    """Nothing can match: answer an empty list (as Nova does)."""


def _user_filters(version):
    for minimum, allowed in (((2, 90), schema.USER_FILTERS_V290),
                             ((2, 83), schema.USER_FILTERS_V283),
                             ((2, 73), schema.USER_FILTERS_V273),
                             ((2, 66), schema.USER_FILTERS_V266)):
        if version.matches(minimum):
            return allowed
    if version.matches((2, 26)):
        return schema.USER_FILTERS_V226
    if version.matches((2, 5)):
        return schema.USER_FILTERS_V25
    return schema.USER_FILTERS


def _search_options(context, version, params):
    """Nova's remove_invalid_options: the last value of each parameter the
    caller may filter by; unknown ones are dropped, never refused."""
    options = {key: values[-1] for key, values in params.items()}
    if context.can(policies.ALLOW_ALL_FILTERS, fatal=False):
        for key in schema.PAGING_SORTING:
            options.pop(key, None)
        return options
    allowed = _user_filters(version)
    return {key: value for key, value in options.items() if key in allowed}


def _all_tenants(options):
    """Nova's is_all_tenants: present and empty, or a true boolean."""
    value = options.get('all_tenants')
    if value:
        try:
            return strutils.bool_from_string(value, strict=True)
        except ValueError as exc:
            raise faults.APIFault(400, str(exc))
    return 'all_tenants' in options


def _filters(context, version, params, options, detail):
    """The Database.instance_list filters and whether to list all projects.
    """
    filters = {}
    if 'status' in params:
        found_vm, found_task = views.states_from_status(params['status'])
        if not found_vm and not found_task:
            if version.matches((2, 38)):
                raise faults.APIFault(400, 'Invalid status value')
            raise _Empty()
        filters['vm_state'] = found_vm
        if 'default' not in found_task:
            filters['task_state'] = found_task
    for key in schema.JOINED_TABLE_PARAMS:
        if key in options:
            raise faults.APIFault(400, 'Invalid filter field: %s.' % key)
    for option, key in (('changes-since', 'changes_since'),
                        ('changes-before', 'changes_before')):
        if option in options:
            try:
                when = timeutils.parse_isotime(options[option])
            except ValueError:
                raise faults.APIFault(400,
                                      'Invalid filter field: %s.' % option)
            filters[key] = timeutils.normalize_time(when)
    if filters.get('changes_before') and filters.get('changes_since') and \
            filters['changes_before'] < filters['changes_since']:
        raise faults.APIFault(400, 'The value of changes-since must be '
                                   'less than or equal to changes-before.')
    if 'locked' in options and version.matches((2, 73)):
        try:
            filters['locked'] = strutils.bool_from_string(options['locked'],
                                                          strict=True)
        except ValueError as exc:
            raise faults.APIFault(400, str(exc))
    # Deleted servers are listed only when asked for, or since (or
    # before) a time.
    if 'deleted' in options:
        filters['deleted'] = strutils.bool_from_string(options['deleted'],
                                                       default=False)
    elif 'changes_since' in filters or 'changes_before' in filters:
        filters['deleted'] = None
    if filters.get('vm_state') == [vm_states.DELETED]:
        if not context.is_admin:
            raise faults.APIFault(
                403, 'Only administrators may list deleted instances')
        filters['deleted'] = True
    # As Nova: SOFT_DELETED servers are not live in a list; an admin's
    # deleted list has them.
    filters['soft_deleted'] = filters.get('deleted', False) is not False
    # An admin's own vm_state/task_state filters (Nova's exact match).
    for key in ('vm_state', 'task_state'):
        if key in options and key not in filters:
            filters[key] = params[key]
    if 'name' in options:
        filters['name_regex'] = options['name']
    if 'key_name' in options:  # admins; everybody from 2.83 (Nova: regex)
        filters['key_name_regex'] = options['key_name']
    if 'reservation_id' in options:
        # Nova matches it as a regular expression, as the name.
        filters['reservation_id_regex'] = options['reservation_id']
    if 'image' in options:
        filters['image_ref'] = options['image']
    for key, column in _ADMIN_EXACT.items():
        if key in options:
            filters[column] = options[key]
    if 'flavor' in options:
        if options['flavor'] not in [f['id'] for f in
                                     flavors.list_flavors()]:
            raise _Empty()  # Nova: an unknown flavor matches nothing
        filters['flavor_id'] = options['flavor']
    if any(key in options for key in _NEVER_MATCH):
        raise _Empty()
    all_projects = _all_tenants(options)
    if all_projects:
        context.can(policies.DETAIL_ALL_TENANTS if detail
                    else policies.INDEX_ALL_TENANTS)
        project_id = options.get('project_id', options.get('tenant_id'))
        if project_id is not None:
            filters['project_id'] = project_id
    return filters, all_projects


def _sort(context, version, params):
    """Nova's get_sort_params, remove_invalid_sort_keys and
    process_sort_params, then only the keys that name a column of
    ``Database.SORT_COLUMNS`` (the others hold one value for every server
    and cannot change the order). The schema refused every key Nova does
    not know (400); a key Nova knows is never the database's error.
    """
    keys = [key.strip() for key in params.get('sort_key', [])] or [
        'created_at']
    dirs = [d.strip() for d in params.get('sort_dir', [])] or ['desc']
    ignored = schema.ignored_sort_keys(version)
    for key in list(keys):
        if key in ignored:
            index = keys.index(key)
            if len(dirs) > index:
                dirs.pop(index)
            keys.pop(index)
        elif key in _ADMIN_SORT_KEYS and not context.is_admin:
            raise faults.APIFault(
                403, 'Only administrators can sort servers by %s' % key)
    for direction in dirs:
        if direction not in ('asc', 'desc'):
            raise faults.APIFault(
                400, "Unknown sort direction, must be 'desc' or 'asc'")
    if len(dirs) > len(keys):
        raise faults.APIFault(400, 'Sort direction size exceeds sort key '
                                   'size')
    default_dir = dirs[0] if dirs else 'desc'
    dirs += [default_dir] * (len(keys) - len(dirs))
    for key in ('created_at', 'id'):
        if key not in keys:
            keys.append(key)
            dirs.append(default_dir)
    columns, column_dirs = [], []
    for key, direction in zip(keys, dirs):
        column = _SORT_COLUMN.get(key, key)
        if column in columns:
            continue  # a later key equal to an earlier one changes nothing
        if column in db_api.Database.SORT_COLUMNS and \
                column in models.instances.c:
            columns.append(column)
            column_dirs.append(direction)
    return columns, column_dirs


def _next_link(req, items, limit, detail):
    """Nova's _get_collection_links: a full page links to the next one."""
    if not limit or len(items) != limit:
        return None
    params = collections.OrderedDict(sorted(req.params.items()))
    params['marker'] = items[-1]['uuid']
    collection = ('servers', 'detail') if detail else ('servers',)
    return [{'rel': 'next', 'href': '%s?%s' % (
        util.link(req, *collection), parse.urlencode(params))}]


def _check_marker(req, context, marker, all_projects):
    """The marker must be a server the caller could list (live or
    deleted): Nova finds it in any project, which tells a caller that
    another project's server exists, and when it was made (the page after
    it). Here another project's server is "marker not found", the 400 of
    an unknown id."""
    if marker is None or (all_projects and context.is_admin):
        return
    if not util.compute_api(req).get_all(
            context, {'uuid': marker, 'deleted': None}, limit=1):
        raise exception.MarkerNotFound(marker=marker)


def list_servers(req, detail):
    context = util.context(req)
    context.can(policies.DETAIL if detail else policies.INDEX,
                target={'project_id': context.project_id})
    version = util.version(req)
    try:
        params = req.GET.dict_of_lists()
    except UnicodeDecodeError:
        raise faults.APIFault(400, 'The query string is not valid UTF-8.')
    validation.validate_query(params, schema.query_schema(version))
    for key, values in params.items():
        # No database takes a NUL inside a string (PostgreSQL refuses it).
        if any('\x00' in value for value in values):
            raise faults.APIFault(
                400, 'Invalid input for query parameters %s. Value: %r. '
                     'NUL characters are not allowed.' % (key, values))
    options = _search_options(context, version, params)
    max_limit = util.conf(req).api.max_limit
    limit = max_limit
    if 'limit' in params:
        limit = min(max_limit, int(params['limit'][-1]))
    marker = params['marker'][-1] if 'marker' in params else None
    response_schema = (schema.DETAIL_RESPONSE if detail
                       else schema.INDEX_RESPONSE)
    try:
        filters, all_projects = _filters(context, version, params,
                                         options, detail)
        _check_marker(req, context, marker, all_projects)
        sort_keys, sort_dirs = _sort(context, version, params)
        instances = util.compute_api(req).get_all(
            context, filters, all_projects=all_projects, limit=limit,
            marker=marker, sort_keys=sort_keys, sort_dirs=sort_dirs,
            with_faults=detail, with_bdms=detail)
    except _Empty:
        instances = []
    except exception.MarkerNotFound:
        raise faults.APIFault(400, 'marker [%s] not found' % marker)
    if detail:
        show_extended = context.can(policies.EXTENDED_ATTRIBUTES,
                                    fatal=False)
        servers = [views.server(req, i, show_extended) for i in instances]
    else:
        servers = [views.server_summary(req, i) for i in instances]
    body = {'servers': servers}
    links = _next_link(req, instances, limit, detail)
    if links:
        body['servers_links'] = links
    conf = util.conf(req)
    checked = body
    if conf.api.response_validation != 'error' and len(servers) > 1:
        # Every server comes from the same view function: in production
        # ("warn") the envelope and the first server show a drift, at a
        # fixed cost. Checking all of a 1000-server detail page took 1.2 s
        # of the request's 1.4 s (jsonschema); tests ("error") check all.
        checked = dict(body, servers=servers[:1])
    validation.validate_response(conf, checked, response_schema)
    return util.json_response(req, body)
