"""django-q2 jobs: take ids, call one service. Nothing else."""

from sites import services
from sites.sync import couchdb_from_settings, signups_write_back


def deploy_site(site_id: int) -> bool:
    return services.site_deploy(site_id=site_id)


def watch_deploying() -> int:
    return services.sites_watch_deploying()


def scale_site(site_id: int, replicas: int) -> None:
    services.site_scale(site_id=site_id, replicas=replicas)


def delete_site(site_id: int) -> bool:
    return services.site_delete(site_id=site_id)


def refresh_site_status() -> str:
    summary = services.sites_refresh_status()
    return (
        f"observed {summary.observed}: live {len(summary.live)}, failed {len(summary.failed)}, "
        f"missing {len(summary.missing)}, unmanaged {len(summary.unmanaged)}"
    )


def write_back_signups() -> int:
    with couchdb_from_settings() as client:
        return signups_write_back(client=client)
