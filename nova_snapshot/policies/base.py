"""Personas every rule is built from (Nova's names and meanings)."""

from oslo_policy import policy

ADMIN = 'rule:context_is_admin'
PROJECT_MEMBER = 'role:member and project_id:%(project_id)s'
PROJECT_READER = 'role:reader and project_id:%(project_id)s'
PROJECT_MEMBER_OR_ADMIN = 'rule:project_member_api or rule:context_is_admin'
PROJECT_READER_OR_ADMIN = 'rule:project_reader_api or rule:context_is_admin'
# Service-to-service APIs (Nova's SERVICE_ROLE): the ``service`` role, or
# an admin (Nova still allows admins, for deployments whose service users
# lack the service role).
SERVICE_OR_ADMIN = 'rule:service_or_admin'

rules = [
    policy.RuleDefault('context_is_admin', 'role:admin',
                       'Decides what is required for the admin role.'),
    policy.RuleDefault('project_member_api', PROJECT_MEMBER,
                       'Default rule for project-level non-admin APIs.'),
    policy.RuleDefault('project_reader_api', PROJECT_READER,
                       'Default rule for project-level read-only APIs.'),
    policy.RuleDefault('project_member_or_admin', PROJECT_MEMBER_OR_ADMIN,
                       'Default rule for project-level non-admin APIs, or '
                       'an admin.'),
    policy.RuleDefault('project_reader_or_admin', PROJECT_READER_OR_ADMIN,
                       'Default rule for project-level read-only APIs, or '
                       'an admin.'),
    policy.RuleDefault('service_api', 'role:service',
                       'Default rule for service-to-service APIs.'),
    policy.RuleDefault('service_or_admin',
                       'rule:service_api or rule:context_is_admin',
                       'Default rule for service-to-service APIs, or an '
                       'admin.'),
]


def server_action(name, action, check_str, description):
    """The rule of one ``POST /servers/{server_id}/action`` body key."""
    return policy.DocumentedRuleDefault(
        name=name, check_str=check_str, description=description,
        operations=[{'method': 'POST',
                     'path': '/servers/{server_id}/action (%s)' % action}],
        scope_types=['project'])


def list_rules():
    return rules
