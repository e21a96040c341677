"""GET /flavors, /flavors/detail, /flavors/{flavor_id}."""

from nova_snapshot.api import util
from nova_snapshot.api import views
from nova_snapshot.compute import flavors
from nova_snapshot.policies import flavors as policies


def index(req):
    util.context(req).can(policies.INDEX)
    return util.json_response(req, {'flavors': [
        views.flavor_summary(req, f) for f in flavors.list_flavors()]})


def detail(req):
    util.context(req).can(policies.INDEX)
    return util.json_response(req, {'flavors': [
        views.flavor(req, f) for f in flavors.list_flavors()]})


def show(req, flavor_id):
    util.context(req).can(policies.SHOW)
    return util.json_response(
        req, {'flavor': views.flavor(req, flavors.get_flavor(flavor_id))})
