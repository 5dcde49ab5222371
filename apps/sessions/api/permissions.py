"""The API's permission check: every action names the model permission it needs."""

from rest_framework.permissions import BasePermission

# What each standard action needs, as a permission verb on the view's model.
ACTION_VERBS = {
    "list": "view",
    "retrieve": "view",
    "create": "add",
    "update": "change",
    "partial_update": "change",
    "destroy": "delete",
    "metadata": "view",
}


class HasActionPermission(BasePermission):
    """Authenticated, and holding the permission the action needs.

    Viewsets map actions to verbs on their model (``ACTION_VERBS``, extended by the view's
    ``action_permissions``, e.g. ``{"start": "operate"}``); a plain view names its permission
    in ``required_permission`` ("" for any signed-in user). An action nobody mapped is
    refused: new routes are closed until someone decides who may call them.
    """

    message = "Your role does not allow this action."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        permission = required_permission(request, view)
        if permission == "":
            return True
        return permission is not None and user.has_perm(permission)


def required_permission(request, view) -> str | None:
    explicit = getattr(view, "required_permission", None)
    if explicit is not None:
        return explicit
    action = getattr(view, "action", None)
    if action is None:  # an unknown method on a viewset: OPTIONS handled as metadata
        return None
    verb = {**ACTION_VERBS, **getattr(view, "action_permissions", {})}.get(action)
    if verb is None:
        return None
    # A view may borrow another model's permissions (flows are edited by whoever may edit
    # the endpoints: ``permission_model``).
    model = getattr(view, "permission_model", None) or view.get_queryset().model
    meta = model._meta
    return f"{meta.app_label}.{verb}_{meta.model_name}"
