from django.apps import AppConfig


class SubscribieAdminConfig(AppConfig):
    """Project-level app: registers the start-up system checks."""

    name = "subscribie_admin"
    verbose_name = "Subscribie fleet admin"

    def ready(self) -> None:
        from subscribie_admin import checks  # noqa: F401  (registers the checks)
