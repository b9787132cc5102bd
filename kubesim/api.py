"""Verb semantics over the store: what get/list/create/update/patch/delete mean.

This layer is transport-free (the HTTP router and the controllers both call it) and enforces
the object invariants clients rely on:

* ``uid``, ``creationTimestamp``, ``name``, ``namespace`` never change after create.
* ``generation`` starts at 1 and is bumped only when ``spec`` changes.
* ``status`` is written only through the ``status`` subresource or by controllers
  (``internal=True``); main-resource writes keep the stored status.
* A write carrying a ``resourceVersion`` that is not the stored one fails with 409 Conflict.
* ``dry_run`` runs every check and returns the would-be object without storing it.
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from datetime import UTC, datetime
from typing import Any

from . import apply as ssa
from .bootstrap import namespace_defaults
from .defaults import apply_defaults
from .errors import ApiError, already_exists, bad_request, conflict, invalid, not_found
from .jsonpatch import json_patch, merge_patch
from .resources import NAMESPACES, TYPES, ResourceType
from .selectors import (
    field_selector_name,
    label_matcher,
    parse_field_selector,
    parse_label_selector,
    selector_from_label_selector,
)
from .store import Obj, Store, deep_copy
from .strategic import strategic_merge
from .validation import check_immutable_selector, require_name, validate

PATCH_TYPES = {
    "application/strategic-merge-patch+json": "strategic",
    "application/merge-patch+json": "merge",
    "application/json-patch+json": "json",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "apply",
}


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clone(obj: Any) -> Any:
    """Deep copy of a JSON document (faster than copy.deepcopy for these shapes)."""
    return deep_copy(obj)


def random_suffix(n: int = 5) -> str:
    return "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=n))


def _same(old: Obj, new: Obj) -> bool:
    """Equal apart from resourceVersion and managedFields (which a no-op must not touch)."""
    a, b = old.get("metadata", {}), new.get("metadata", {})
    if set(old) != set(new) or any(old[k] != new[k] for k in old if k != "metadata"):
        return False
    skip = ("resourceVersion", "managedFields")
    return {k: v for k, v in a.items() if k not in skip} == {
        k: v for k, v in b.items() if k not in skip
    }


class Api:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- reads -------------------------------------------------------------------------
    def _stored(self, rt: ResourceType, ns: str, name: str) -> Obj | None:
        """The stored object, or None; cluster-scoped types ignore ``ns``."""
        return self.store.get(rt.key, ns if rt.namespaced else "", name)

    def get(self, rt: ResourceType, ns: str, name: str) -> Obj:
        obj = self._stored(rt, ns, name)
        if obj is None:
            raise not_found(rt.plural, rt.group, name)
        return obj

    def list(
        self,
        rt: ResourceType,
        ns: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> tuple[list[Obj], str, str | None, int | None]:
        """Matches in (namespace, name) order: (items, resourceVersion, continue, remaining)."""
        lmatch = label_matcher(parse_label_selector(label_selector))
        fmatch = parse_field_selector(field_selector)
        start: tuple[str, str] | None = None
        snapshot_rv: int | None = None
        if continue_token:
            try:
                tok = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                start = (tok["ns"], tok["name"])
                snapshot_rv = int(tok["rv"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(
                    400, "BadRequest", "continue key is not valid: illegal base64 data"
                ) from None
        with self.store.lock:
            rv = str(self.store.resource_version)
            pinned = field_selector_name(field_selector)
            if snapshot_rv is not None:
                # Later pages are served from the first page's snapshot, as the real server
                # does: an object changed since reads as it was, one created since is absent.
                rv = str(snapshot_rv)
                candidates = self.store.iter_at(rt.key, ns if rt.namespaced else None, snapshot_rv)
                if pinned is not None:
                    candidates = [o for o in candidates if o["metadata"]["name"] == pinned]
            elif pinned is not None and ns is not None:
                one = self._stored(rt, ns, pinned)
                candidates = [one] if one is not None else []
            else:
                candidates = list(self.store.iter(rt.key, ns if rt.namespaced else None))
        items: list[Obj] = []
        token: str | None = None
        remaining: int | None = None
        for i, obj in enumerate(candidates):
            meta = obj["metadata"]
            if start is not None and (meta.get("namespace", ""), meta["name"]) <= start:
                continue
            if lmatch is not None and not lmatch(meta.get("labels") or {}):
                continue
            if fmatch is not None and not fmatch(obj):
                continue
            if limit and len(items) >= limit:
                last = items[-1]["metadata"]
                token = base64.urlsafe_b64encode(
                    json.dumps(
                        {"ns": last.get("namespace", ""), "name": last["name"], "rv": rv}
                    ).encode()
                ).decode()
                if lmatch is None and fmatch is None:
                    remaining = len(candidates) - i
                break
            items.append(obj)
        return items, rv, token, remaining

    # -- writes ------------------------------------------------------------------------
    def _require_namespace(self, rt: ResourceType, ns: str) -> None:
        if rt.namespaced and self.store.get(NAMESPACES.key, "", ns) is None:
            raise not_found("namespaces", "", ns)

    def create(
        self,
        rt: ResourceType,
        ns: str,
        body: Obj,
        *,
        dry_run: bool = False,
        manager: str | None = None,
        internal: bool = False,
    ) -> Obj:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        self._check_kind(rt, body)
        obj = body
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        require_name(rt, obj)
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"  # noqa: E501 - verbatim message
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        with self.store.lock:
            self._require_namespace(rt, ns)
            if not meta.get("name"):
                for _ in range(20):
                    candidate = meta["generateName"] + random_suffix()
                    if self._stored(rt, ns, candidate) is None:
                        meta["name"] = candidate
                        break
            name = meta["name"]
            if self._stored(rt, ns, name) is not None:
                raise already_exists(rt.plural, rt.group, name)
            obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
            for k in ("resourceVersion", "deletionTimestamp", "selfLink"):
                meta.pop(k, None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_iso()
            if rt.has_generation:
                meta["generation"] = 1
            if not internal:
                self._initial_status(rt, obj)
            apply_defaults(rt, obj)
            validate(rt, obj)
            if manager and not internal:
                meta.pop("managedFields", None)
                ssa.track_update(None, obj, manager, rt.api_version, meta["creationTimestamp"])
            if dry_run:
                return obj
            return self._stored_new(rt, obj)

    def _stored_new(self, rt: ResourceType, obj: Obj) -> Obj:
        """Store a newly created object; a new namespace gets what its controllers add."""
        stored = self.store.put(rt.key, obj)
        if rt is NAMESPACES:
            namespace_defaults(self, stored["metadata"]["name"])
        return stored

    def _initial_status(self, rt: ResourceType, obj: Obj) -> None:
        if rt.plural == "namespaces":
            obj["status"] = {"phase": "Active"}
        elif rt.plural == "pods":
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        elif rt.plural == "services":
            obj["status"] = {"loadBalancer": {}}
            spec = obj.setdefault("spec", {})
            if spec.get("type") == "ExternalName":
                pass  # a DNS alias: the allocator gives it no cluster IP
            elif spec.get("clusterIP") is None:
                n = random.randint(1, 65000)
                spec["clusterIP"] = f"10.96.{n // 256}.{n % 256}"
                spec["clusterIPs"] = [spec["clusterIP"]]
            elif not spec.get("clusterIPs"):
                spec["clusterIPs"] = [spec["clusterIP"]]  # "None" for a headless one too
            if spec.get("type") != "ExternalName":
                # What the IP allocator settles on a single-stack IPv4 cluster.
                spec.setdefault("ipFamilies", ["IPv4"])
                spec.setdefault("ipFamilyPolicy", "SingleStack")
                spec.setdefault("internalTrafficPolicy", "Cluster")
            if spec.get("type") in ("NodePort", "LoadBalancer"):
                spec.setdefault("externalTrafficPolicy", "Cluster")
                for port in spec.get("ports") or []:
                    if isinstance(port, dict) and not port.get("nodePort"):
                        port["nodePort"] = random.randint(30000, 32767)
            if spec.get("type") == "LoadBalancer":
                spec.setdefault("allocateLoadBalancerNodePorts", True)
        elif rt.has_status:
            obj["status"] = {}

    def _check_kind(self, rt: ResourceType, body: Obj) -> None:
        kind = body.get("kind")
        if kind and kind != rt.kind:
            raise bad_request(
                f"the kind of the provided object ({kind}) does not match the resource ({rt.kind})"
            )

    def _commit(
        self,
        rt: ResourceType,
        old: Obj,
        new: Obj,
        *,
        subresource: str | None,
        dry_run: bool,
        manager: str | None,
        internal: bool,
        check_rv: bool,
        managed_done: bool = False,
    ) -> Obj:
        """Shared tail of update and patch; caller holds the store lock. ``new`` is owned."""
        meta = new.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        old_meta = old["metadata"]
        if (
            check_rv
            and meta.get("resourceVersion")
            and meta["resourceVersion"] != old_meta["resourceVersion"]
        ):
            raise conflict(
                rt.plural,
                rt.group,
                old_meta["name"],
                "the object has been modified; please apply your changes to the latest version and try again",  # noqa: E501 - verbatim message
            )
        if meta.get("name", old_meta["name"]) != old_meta["name"]:
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({old_meta['name']})"  # noqa: E501 - verbatim message
            )
        new["apiVersion"], new["kind"] = rt.api_version, rt.kind
        if subresource == "status" and not internal:
            status = new.get("status")
            new = clone(old)
            new["status"] = status if status is not None else {}
            meta = new["metadata"]
        elif not internal and rt.has_status:
            if "status" in old:
                new["status"] = clone(old["status"])
            else:
                new.pop("status", None)
        for k in (
            "uid",
            "creationTimestamp",
            "namespace",
            "name",
            "deletionTimestamp",
            "generateName",
        ):
            if k in old_meta:
                meta[k] = old_meta[k]
            else:
                meta.pop(k, None)
        if rt.has_generation:
            gen = old_meta.get("generation", 1)
            if new.get("spec") != old.get("spec"):
                # Compare after defaulting, so re-sending defaults is not a spec change.
                apply_defaults(rt, new)
                if new.get("spec") != old.get("spec"):
                    gen += 1
            meta["generation"] = gen
        apply_defaults(rt, new)
        validate(rt, new)
        check_immutable_selector(rt, old, new)
        if _same(old, new) and (
            not managed_done or old_meta.get("managedFields") == meta.get("managedFields")
        ):
            return old  # a no-op write changes nothing, not even resourceVersion
        if manager and not internal and not managed_done:
            meta.pop("managedFields", None)
            if "managedFields" in old_meta:
                meta["managedFields"] = old_meta["managedFields"]
            ssa.track_update(old, new, manager, rt.api_version, now_iso(), subresource)
        elif (
            "managedFields" in old_meta
            and not managed_done
            and not (internal and "managedFields" in meta)
        ):
            # Clients cannot rewrite managedFields by update; the controllers (internal)
            # record their own entry, as a real controller's write leaves one.
            meta["managedFields"] = old_meta["managedFields"]
        if dry_run:
            meta["resourceVersion"] = old_meta["resourceVersion"]
            return new
        return self.store.put(rt.key, new)

    def update(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        body: Obj,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        manager: str | None = None,
        internal: bool = False,
    ) -> Obj:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        self._check_kind(rt, body)
        with self.store.lock:
            old = self._stored(rt, ns, name)
            if old is None:
                if subresource is None and not internal:
                    body.setdefault("metadata", {}).setdefault("name", name)
                    body["metadata"].pop("resourceVersion", None)
                    return self.create(rt, ns, body, dry_run=dry_run, manager=manager)
                raise not_found(rt.plural, rt.group, name)
            if rt.namespaced:
                bns = (body.get("metadata") or {}).get("namespace")
                if bns and bns != ns:
                    raise bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request"  # noqa: E501 - verbatim message
                    )
            return self._commit(
                rt,
                old,
                body,
                subresource=subresource,
                dry_run=dry_run,
                manager=manager,
                internal=internal,
                check_rv=True,
            )

    def patch(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        patch_type: str,
        patch: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        manager: str | None = None,
        force: bool = False,
    ) -> Obj:
        with self.store.lock:
            old = self._stored(rt, ns, name)
            if patch_type == "apply":
                return self._apply(rt, ns, name, old, patch, subresource, dry_run, manager, force)
            if old is None:
                raise not_found(rt.plural, rt.group, name)
            current = self.store.clone(old)
            if patch_type == "strategic":
                if not isinstance(patch, dict):
                    raise bad_request("strategic merge patch must be a JSON object")
                new = strategic_merge(current, patch)
            elif patch_type == "merge":
                if not isinstance(patch, dict):
                    raise bad_request("merge patch must be a JSON object")
                new = merge_patch(current, patch)
            else:
                new = json_patch(current, patch)
            if not isinstance(new, dict):
                raise bad_request("patch produced a non-object")
            return self._commit(
                rt,
                old,
                new,
                subresource=subresource,
                dry_run=dry_run,
                manager=manager,
                internal=False,
                check_rv=True,
            )

    def _apply(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        old: Obj | None,
        applied: Any,
        subresource: str | None,
        dry_run: bool,
        manager: str | None,
        force: bool,
    ) -> Obj:
        if not manager:
            raise bad_request("PATCH, fieldManager is required for apply requests")
        if not isinstance(applied, dict):
            raise bad_request("apply patch must be an object")
        meta = applied.get("metadata") or {}
        if applied.get("kind") != rt.kind or applied.get("apiVersion") != rt.api_version:
            raise bad_request(
                f"invalid object type: {applied.get('apiVersion')}, Kind={applied.get('kind')}"
            )
        if meta.get("name") and meta["name"] != name:
            raise bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"  # noqa: E501 - verbatim message
            )
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != ns:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"  # noqa: E501 - verbatim message
            )
        applied = {k: v for k, v in applied.items() if k != "status" or subresource == "status"}
        merged = ssa.server_side_apply(
            old,
            applied,
            manager,
            force,
            rt.api_version,
            now_iso(),
            base=self.store.clone(old) if old is not None else None,
        )
        merged.setdefault("metadata", {})["name"] = name
        if old is None:
            managed = merged["metadata"].get("managedFields")
            created = self.create(rt, ns, merged, dry_run=True, manager=None)
            created["metadata"]["managedFields"] = managed
            if dry_run:
                return created
            return self._stored_new(rt, created)
        return self._commit(
            rt,
            old,
            merged,
            subresource=subresource,
            dry_run=dry_run,
            manager=manager,
            internal=False,
            check_rv=False,
            managed_done=True,
        )

    # -- scale subresource -------------------------------------------------------------
    def get_scale(self, rt: ResourceType, ns: str, name: str) -> Obj:
        obj = self.get(rt, ns, name)
        meta = obj["metadata"]
        sel = (obj.get("spec") or {}).get("selector") or {}
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
            "status": {
                "replicas": (obj.get("status") or {}).get("replicas", 0),
                "selector": ",".join(f"{k}={v}" for k, v in (sel.get("matchLabels") or {}).items()),
            },
        }

    def write_scale(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        patch_type: str | None,
        body: Any,
        dry_run: bool,
        manager: str | None,
    ) -> Obj:
        with self.store.lock:
            scale = self.get_scale(rt, ns, name)
            if patch_type is None:
                new_scale = body
                rv = (body.get("metadata") or {}).get("resourceVersion")
                if rv and rv != scale["metadata"]["resourceVersion"]:
                    raise conflict(
                        rt.plural,
                        rt.group,
                        name,
                        "the object has been modified; please apply your changes to the latest version and try again",  # noqa: E501 - verbatim message
                    )
            elif patch_type == "json":
                new_scale = json_patch(scale, body)
            elif patch_type in ("merge", "strategic", "apply"):
                new_scale = merge_patch(scale, body)
            else:
                raise bad_request("unsupported patch type for scale")
            replicas = (new_scale.get("spec") or {}).get("replicas", 0)
            if not isinstance(replicas, int) or replicas < 0:
                raise invalid(
                    "Scale",
                    "autoscaling",
                    name,
                    [
                        (
                            "FieldValueInvalid",
                            "spec.replicas",
                            f"Invalid value: {replicas}: must be greater than or equal to 0",
                        )
                    ],
                )
            old = self.get(rt, ns, name)
            new = clone(old)
            new["spec"]["replicas"] = replicas
            self._commit(
                rt,
                old,
                new,
                subresource=None,
                dry_run=dry_run,
                manager=manager,
                internal=False,
                check_rv=False,
            )
            out = self.get_scale(rt, ns, name)
            out["spec"]["replicas"] = replicas
            return out

    # -- deletes -----------------------------------------------------------------------
    def delete(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        *,
        propagation: str | None = None,
        dry_run: bool = False,
        preconditions: dict[str, str] | None = None,
    ) -> Obj:
        """Delete now; dependents go too unless ``propagation == "Orphan"``.

        Real Background deletion is asynchronous; doing it synchronously only makes the
        emulator converge sooner, which no client can tell apart from a fast cluster.
        """
        with self.store.lock:
            obj = self.get(rt, ns, name)
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != obj["metadata"]["uid"]:
                raise conflict(
                    rt.plural,
                    rt.group,
                    name,
                    f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {obj['metadata']['uid']}",  # noqa: E501 - verbatim message
                )
            if (
                pre.get("resourceVersion")
                and pre["resourceVersion"] != obj["metadata"]["resourceVersion"]
            ):
                raise conflict(
                    rt.plural,
                    rt.group,
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",  # noqa: E501 - verbatim message
                )
            if dry_run:
                return obj
            if rt.plural == "namespaces":
                for t in TYPES:
                    if t.namespaced:
                        for child in list(self.store.iter(t.key, name)):
                            self.store.remove(t.key, name, child["metadata"]["name"])
                gone = self.store.remove(rt.key, "", name) or obj
                gone = clone(gone)
                gone["metadata"]["deletionTimestamp"] = now_iso()
                gone["status"] = {"phase": "Terminating"}
                return gone
            self._remove_tree(
                rt.key, ns if rt.namespaced else "", name, propagation or "Background"
            )
            return obj

    def _remove_tree(self, type_key: str, ns: str, name: str, propagation: str) -> None:
        obj = self.store.remove(type_key, ns, name)
        if obj is None:
            return
        uid = obj["metadata"]["uid"]
        for dep_key, dep_ns, dep_name in self.store.dependents(uid):
            if propagation == "Orphan":
                dep = self.store.get(dep_key, dep_ns, dep_name)
                if dep is not None:
                    new = clone(dep)
                    new["metadata"]["ownerReferences"] = [
                        r for r in new["metadata"].get("ownerReferences", []) if r.get("uid") != uid
                    ] or None
                    if new["metadata"]["ownerReferences"] is None:
                        del new["metadata"]["ownerReferences"]
                    self.store.put(dep_key, new)
            else:
                self._remove_tree(dep_key, dep_ns, dep_name, propagation)

    def delete_collection(
        self,
        rt: ResourceType,
        ns: str | None,
        label_selector: str | None,
        field_selector: str | None,
        *,
        propagation: str | None = None,
        dry_run: bool = False,
    ) -> list[Obj]:
        with self.store.lock:
            items, _, _, _ = self.list(rt, ns, label_selector, field_selector)
            for obj in items:
                if not dry_run:
                    meta = obj["metadata"]
                    self.delete(
                        rt, meta.get("namespace", ""), meta["name"], propagation=propagation
                    )
            return items

    # -- helpers for controllers ---------------------------------------------------------
    def owned_by(self, owner: Obj, type_key: str) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        out = []
        for key, ns, name in self.store.dependents(uid):
            if key == type_key:
                obj = self.store.get(key, ns, name)
                if obj is not None and any(
                    r.get("uid") == uid and r.get("controller")
                    for r in obj["metadata"].get("ownerReferences", [])
                ):
                    out.append(obj)
        return out

    def selects(self, obj: Obj, labels: dict[str, str]) -> bool:
        m = selector_from_label_selector((obj.get("spec") or {}).get("selector"))
        return bool(m and m(labels))
