from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class SubscribieAdminConfig(AppConfig):
    """Project-level app: registers the start-up system checks."""

    name = "subscribie_admin"
    verbose_name = "Subscribie fleet admin"

    def ready(self) -> None:
        from subscribie_admin import checks  # noqa: F401  (registers the checks)


class FleetAdminConfig(AdminConfig):
    """Django's admin with the fleet dashboard site (subscribie_admin/admin_site.py)."""

    default_site = "subscribie_admin.admin_site.FleetAdminSite"
