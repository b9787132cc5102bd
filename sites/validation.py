"""Validate a raw CouchDB signup document (hostile user input) into a ``ValidSignup``.

Pure module: plain data in, plain data out. No Django, no network, no clock, no randomness.

Invariants
----------
* ``validate_signup`` never raises for any JSON-like ``doc``; wrong types, missing fields and
  hostile strings all become human-readable reasons. (It raises ``TypeError`` only for
  programmer errors in its own keyword arguments.)
* A ``ValidationResult`` holds either a ``ValidSignup`` and no reasons, or reasons and no signup.
* Every reason is collected, not just the first, in a fixed field order, so staff see all the
  problems at once and the output is deterministic.
* Reasons never contain raw control or invisible characters: user values are shown with
  ``repr`` (which escapes them) and truncated.
* A ``ValidSignup`` only holds: a DNS-1035 slug of 3-40 characters that is neither reserved nor
  taken; a title of 1-100 characters with no control/format characters; an ASCII owner email of
  sane syntax; an optional ASCII (IDNA-encoded) custom domain that is a valid hostname outside
  the base domain and not taken; an allow-listed theme name; a ``#rrggbb`` lowercase colour;
  an optional maintenance window in canonical form (``sites.windows``: known day names, valid
  times, a time zone ``zoneinfo`` knows).
"""

from __future__ import annotations

import copy
import json
import re
import unicodedata
from collections.abc import Container, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from sites.windows import WindowError, format_window, parse_window

__all__ = [
    "DEFAULT_THEME_COLOUR",
    "DEFAULT_THEME_NAME",
    "DEPLOY_QUEUE_STATE",
    "EMAIL_MAX_LENGTH",
    "RESERVED_NAMES",
    "RESERVED_PREFIXES",
    "SLUG_MAX_LENGTH",
    "SLUG_MIN_LENGTH",
    "THEMES",
    "TITLE_MAX_LENGTH",
    "ValidSignup",
    "ValidationResult",
    "is_reserved_name",
    "normalise_domain",
    "slugify_site_name",
    "validate_signup",
]

#: Only documents in this queue state are signups waiting to be processed.
DEPLOY_QUEUE_STATE = "deploy"

#: Allow-listed theme names. Kept small on purpose: a theme name ends up in the pod environment,
#: and an unknown theme would only make the site fail at runtime.
THEMES: frozenset[str] = frozenset({"jesmond", "default", "clean", "builder"})
DEFAULT_THEME_NAME = "jesmond"
DEFAULT_THEME_COLOUR = "#e73b1a"

#: Names that would collide with infrastructure hostnames or look official.
RESERVED_NAMES: frozenset[str] = frozenset({"www", "admin", "api", "mail", "default", "subscribie"})
#: Prefixes reserved for the platform (``kube-system``, ``kube-public`` ... look like cluster
#: internals, and Kubernetes reserves the ``kube-`` prefix for namespaces).
RESERVED_PREFIXES: tuple[str, ...] = ("kube-",)

# 40 rather than the DNS maximum of 63 so that derived names (`<slug>-secrets`, `<slug>-tls`,
# ReplicaSet `<slug>-<hash>` and Pod `<slug>-<hash>-<suffix>`) all stay within 63 characters.
SLUG_MIN_LENGTH = 3
SLUG_MAX_LENGTH = 40
TITLE_MAX_LENGTH = 100
EMAIL_MAX_LENGTH = 254  # RFC 5321 path limit minus the angle brackets
EMAIL_LOCAL_MAX_LENGTH = 64
HOSTNAME_MAX_LENGTH = 253
LABEL_MAX_LENGTH = 63

# `fullmatch` everywhere: `$` would also match before a trailing newline, which is exactly the
# kind of hostile input this module exists to refuse.
_DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_HOST_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SLUG_BYTES = bytes(
    b if chr(b) in "abcdefghijklmnopqrstuvwxyz0123456789" else 32 for b in range(256)
)
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
# Deliberately narrower than RFC 5322 atext: the address is shown in the admin, put in pod
# environments and used to send mail; quoting and exotic punctuation buy nothing here.
# In ASCII (checked first), whitespace and control characters are exactly these.
_ASCII_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9_%+'-]+(\.[A-Za-z0-9_%+'-]+)*")
# A subset of what `_email_problem` accepts, checked in one match: a local part of at most 64
# characters, then labels of 1-63 letters, digits and inner hyphens, none of them punycode
# ("xn--", which needs decoding to check), the last one starting with a letter (so it is not
# all-numeric). Everything else takes the long way.
_PLAIN_LABEL = r"(?![Xx][Nn]--)[A-Za-z0-9](?:[-A-Za-z0-9]{0,61}[A-Za-z0-9])?"
_PLAIN_TOP_LABEL = r"(?![Xx][Nn]--)[A-Za-z](?:[-A-Za-z0-9]{0,61}[A-Za-z0-9])?"
_PLAIN_EMAIL = re.compile(
    rf"(?=[^@]{{1,64}}@)[A-Za-z0-9_%+'-]+(?:\.[A-Za-z0-9_%+'-]+)*"
    rf"@(?:{_PLAIN_LABEL}\.)+{_PLAIN_TOP_LABEL}"
)

# Cc: controls (NUL, newline, tab, ...). Cf: format characters (bidi overrides, zero-width
# space/joiners, BOM). Cs: lone surrogates, which JSON can smuggle in and which cannot be
# encoded as UTF-8 later. Zl/Zp: U+2028/U+2029, line breaks to YAML and JavaScript.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

_SHOW_LIMIT = 60
_TEXT = (str, bytes)  # a plain string passed where a collection of names belongs


class ValidSignup(NamedTuple):
    """A signup that passed every rule; all fields are normalised and safe to use as data.

    Immutable (a named tuple: an import builds one per document, and a frozen dataclass cost
    twice as much to build). ``plans`` is kept as opaque data (a tuple of deep-copied JSON
    objects); nothing here interprets it.
    """

    slug: str
    title: str
    owner_email: str
    custom_domain: str | None
    theme_name: str
    theme_colour: str
    plans: tuple[Any, ...] = ()
    maintenance_window: str | None = None


class ValidationResult(NamedTuple):
    """Outcome of ``validate_signup``: exactly one of ``signup`` or non-empty ``reasons``."""

    signup: ValidSignup | None
    reasons: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.signup is not None and not self.reasons


def slugify_site_name(text: str) -> str:
    """Turn free text into a candidate slug: ASCII ``[a-z0-9-]``, no leading/trailing hyphen.

    NFKD-normalise and drop combining marks (so accents go: "Café" -> "cafe"), case-fold, and
    turn every run of other characters into one hyphen. Characters with no ASCII decomposition
    (Cyrillic lookalikes, emoji) become hyphens, so the result may be empty or too short: the
    caller validates it.
    """
    # casefold before NFKD so that e.g. "İ" lowers to "i" + a combining dot that is then dropped,
    # and "ß" becomes "ss"; casefold again after, as compatibility decomposition can produce
    # capitals (e.g. U+210C BLACK-LETTER CAPITAL H -> "H").
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    if decomposed.isascii():  # no combining marks to drop (capitals still can be there)
        stripped = decomposed.lower()
    else:
        stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    # Every character but [a-z0-9] becomes a space (non-ASCII ones by way of "?"), and
    # split() drops the runs of spaces and the ends: one hyphen per run, none at the ends.
    return "-".join(stripped.encode("ascii", "replace").translate(_SLUG_BYTES).decode().split())


def is_reserved_name(slug: str, extra_reserved: Iterable[str] = ()) -> bool:
    """True if ``slug`` is a platform name, starts with a reserved prefix, or is in extras."""
    return _is_reserved(slug, _normalised_names(extra_reserved, "extra_reserved"))


def _is_reserved(slug: str, extras: frozenset[str]) -> bool:
    """``is_reserved_name`` with the extra names already normalised."""
    return slug in RESERVED_NAMES or slug.startswith(RESERVED_PREFIXES) or slug in extras


def normalise_domain(domain: str) -> str:
    """Lowercase, drop one trailing dot and IDNA-encode; raise ``ValueError`` if impossible.

    The ASCII (punycode) form is what DNS, TLS certificates and Ingress hosts use, so it is the
    only form stored or compared.
    """
    lowered = domain.lower()
    if lowered.endswith("."):
        lowered = lowered[:-1]
    try:
        ascii_form = lowered.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError("not a valid internationalised domain name") from exc
    return ascii_form


def validate_signup(
    doc: object,
    *,
    base_domain: str,
    extra_reserved: Iterable[str] = (),
    taken_names: Container[str] = frozenset(),
    taken_domains: Container[str] = frozenset(),
) -> ValidationResult:
    """Validate a raw signup document; collect every reason it cannot become a site.

    ``taken_names`` / ``taken_domains`` are what existing sites already use (the caller reads
    them); a clash is a reason here, and staff can edit the name and re-validate elsewhere.

    The slug comes from ``site_name`` when that is a non-blank string, else from
    ``company.name``; a slug derived from the company name is cut to 40 characters rather than
    refused, while an explicitly requested ``site_name`` that is too long is a reason.

    Validating many documents against the same platform settings: ``SignupRules``.
    """
    rules = SignupRules.of(base_domain=base_domain, extra_reserved=extra_reserved)
    return rules.validate(doc, taken_names=taken_names, taken_domains=taken_domains)


@dataclass(frozen=True)
class SignupRules:
    """``validate_signup`` with its platform settings normalised once, for a whole import."""

    base_domain: str
    reserved_extra: frozenset[str]

    @classmethod
    def of(cls, *, base_domain: str, extra_reserved: Iterable[str] = ()) -> SignupRules:
        return cls(
            base_domain=base_domain.strip().lower().rstrip("."),
            reserved_extra=_normalised_names(extra_reserved, "extra_reserved"),
        )

    def validate(
        self,
        doc: object,
        *,
        taken_names: Container[str] = frozenset(),
        taken_domains: Container[str] = frozenset(),
    ) -> ValidationResult:
        """``validate_signup`` of ``doc`` under these rules."""
        # A plain `str` is a Container of characters, so `"ab" in "xaby"` would be a silent
        # substring match: refuse that programmer error loudly instead.
        if isinstance(taken_names, _TEXT) or isinstance(taken_domains, _TEXT):
            name = "taken_names" if isinstance(taken_names, _TEXT) else "taken_domains"
            raise TypeError(f"{name} must be a collection of names, not a string")
        return _validate(doc, self.base_domain, self.reserved_extra, taken_names, taken_domains)


def _validate(
    doc: object,
    base: str,
    reserved_extra: frozenset[str],
    taken_names: Container[str],
    taken_domains: Container[str],
) -> ValidationResult:
    if not isinstance(doc, dict):
        return ValidationResult(
            None, (f"signup document must be a JSON object (got {_type_name(doc)})",)
        )

    reasons: list[str] = []

    queue_state = doc.get("queue_state")
    if queue_state != DEPLOY_QUEUE_STATE:
        reasons.append(f"queue_state must be {DEPLOY_QUEUE_STATE!r} (got {_show(queue_state)})")

    # Positional arguments throughout: an import validates every document, and keywords
    # cost a third of a call here.
    title, company_name = _check_title(doc, reasons)
    slug = _check_site_name(doc, company_name, reasons, reserved_extra, taken_names)
    owner_email = _check_owner_email(doc, reasons)
    custom_domain = _check_custom_domain(doc, reasons, base, taken_domains)
    theme_name, theme_colour = _check_theme(doc, reasons)
    plans = _check_plans(doc, reasons)
    maintenance_window = _check_maintenance_window(doc, reasons)

    if reasons:
        return ValidationResult(None, tuple(reasons))
    # Every check returned a value when it added no reason; these asserts document that.
    assert slug is not None and title is not None and owner_email is not None
    valid = ValidSignup(
        slug, title, owner_email, custom_domain, theme_name, theme_colour, plans, maintenance_window
    )
    return ValidationResult(valid, ())


# --- field checks: each appends its reasons and returns the normalised value (or None) ---------


def _check_title(doc: dict[str, Any], reasons: list[str]) -> tuple[str | None, str | None]:
    """Return (valid title or None, raw company.name string or None for slug derivation)."""
    if "company" not in doc or doc["company"] is None:
        reasons.append("company is required (an object with a name)")
        return None, None
    company = doc["company"]
    if not isinstance(company, dict):
        reasons.append(f"company must be an object (got {_type_name(company)})")
        return None, None
    name = company.get("name")
    if name is None:
        reasons.append("company.name is required (it is the site title)")
        return None, None
    if not isinstance(name, str):
        reasons.append(f"company.name must be a string (got {_type_name(name)})")
        return None, None

    title = name.strip()
    if not title:
        reasons.append("company.name must not be empty")
        return None, name
    ok = True
    if len(title) > TITLE_MAX_LENGTH:
        reasons.append(
            f"company.name must be at most {TITLE_MAX_LENGTH} characters (got {len(title)})"
        )
        ok = False
    bad = _first_forbidden_char(title)
    if bad is not None:
        reasons.append(
            f"company.name {_show(title)} contains a control or invisible character "
            f"({_describe_char(bad)})"
        )
        ok = False
    return (title if ok else None), name


def _check_site_name(
    doc: dict[str, Any],
    company_name: str | None,
    reasons: list[str],
    reserved_extra: frozenset[str],
    taken_names: Container[str],
) -> str | None:
    raw = doc.get("site_name")
    if raw is not None and not isinstance(raw, str):
        reasons.append(f"site_name must be a string (got {_type_name(raw)})")
        return None
    if isinstance(raw, str) and raw.strip():
        source_field, source = "site_name", raw
    elif company_name is not None:
        source_field, source = "company.name", company_name
    else:
        # company.name is missing or of the wrong type: that reason is already recorded, and
        # repeating it as a site-name problem would only add noise.
        return None

    slug = slugify_site_name(source)
    if source_field == "company.name":
        # Company names are often longer than a slug may be; a derived (not explicitly
        # requested) name is shortened at the limit instead of refusing the whole signup.
        slug = slug[:SLUG_MAX_LENGTH].rstrip("-")
    if not slug:
        reasons.append(
            f"site name from {source_field} {_show(source)} has no ASCII letters or digits"
        )
        return None

    ok = True
    if not SLUG_MIN_LENGTH <= len(slug) <= SLUG_MAX_LENGTH:
        reasons.append(
            f"site name {_show(slug)} must be {SLUG_MIN_LENGTH} to {SLUG_MAX_LENGTH} characters "
            f"(got {len(slug)})"
        )
        ok = False
    if not slug[0].isalpha():
        reasons.append(f"site name {_show(slug)} must start with a letter")
        ok = False
    elif not _DNS_1035_LABEL.fullmatch(slug):  # unreachable after slugify; kept as a guard
        reasons.append(f"site name {_show(slug)} is not a valid DNS label")
        ok = False
    if _is_reserved(slug, reserved_extra):
        reasons.append(f"site name {_show(slug)} is reserved")
        ok = False
    elif slug in taken_names:
        reasons.append(f"site name {_show(slug)} is already taken by another site")
        ok = False
    return slug if ok else None


def _check_owner_email(doc: dict[str, Any], reasons: list[str]) -> str | None:
    users = doc.get("users")
    if users is None:
        reasons.append("users is required (the first user is the site owner)")
        return None
    if not isinstance(users, list):
        reasons.append(f"users must be a list of email addresses (got {_type_name(users)})")
        return None
    if not users:
        reasons.append("users must contain at least one email address (the site owner)")
        return None
    if not (len(users) == 1 and type(users[0]) is str):  # one owner, the usual shape
        non_strings = [i for i, user in enumerate(users) if not isinstance(user, str)]
        for i in non_strings[:3]:  # a few are enough to explain the problem
            reasons.append(f"users[{i}] must be a string (got {_type_name(users[i])})")
        if non_strings:
            return None

    email = users[0]
    why = _email_problem(email)
    if why is not None:
        reasons.append(f"owner email users[0] {_show(email)} is not valid: {why}")
        return None
    local, _, domain = email.partition("@")
    if domain.islower():
        return email
    # Domains are case-insensitive; local parts formally are not, so only the domain is folded.
    return f"{local}@{domain.lower()}"


def _check_custom_domain(
    doc: dict[str, Any],
    reasons: list[str],
    base_domain: str,
    taken_domains: Container[str],
) -> str | None:
    raw = doc.get("custom_domain")
    if raw is None or raw == "":
        return None  # optional: a blank form field means "none"
    if not isinstance(raw, str):
        reasons.append(f"custom_domain must be a string (got {_type_name(raw)})")
        return None
    # Refuse invisible characters before IDNA: nameprep would silently delete zero-width
    # characters, so what staff see would not be what was typed.
    bad = _first_forbidden_char(raw)
    if bad is None and any(ch.isspace() for ch in raw):
        bad = next(ch for ch in raw if ch.isspace())
    if bad is not None:
        reasons.append(
            f"custom_domain {_show(raw)} contains whitespace or an invisible character "
            f"({_describe_char(bad)})"
        )
        return None
    try:
        domain = normalise_domain(raw)
    except ValueError:
        reasons.append(f"custom_domain {_show(raw)} is not a valid domain name")
        return None
    why = _hostname_problem(domain)
    if why is not None:
        reasons.append(f"custom_domain {_show(raw)} is not a valid domain name: {why}")
        return None
    if base_domain and (domain == base_domain or domain.endswith("." + base_domain)):
        reasons.append(
            f"custom_domain {_show(domain)} is under the platform domain {base_domain!r}; "
            "use site_name instead"
        )
        return None
    if domain in taken_domains:
        reasons.append(f"custom_domain {_show(domain)} is already used by another site")
        return None
    return domain


def _check_theme(doc: dict[str, Any], reasons: list[str]) -> tuple[str, str]:
    """Return (theme name, colour); defaults stand in for absent or invalid parts.

    Returning defaults on error is harmless: any reason makes the whole result invalid.
    """
    theme = doc.get("theme")
    if theme is None:
        return DEFAULT_THEME_NAME, DEFAULT_THEME_COLOUR
    if not isinstance(theme, dict):
        reasons.append(f"theme must be an object (got {_type_name(theme)})")
        return DEFAULT_THEME_NAME, DEFAULT_THEME_COLOUR

    name = theme.get("name")
    theme_name = DEFAULT_THEME_NAME
    if name is not None:
        if not isinstance(name, str):
            reasons.append(f"theme.name must be a string (got {_type_name(name)})")
        elif name in THEMES:  # already in its normal form
            theme_name = name
        elif name.strip().lower() in THEMES:
            theme_name = name.strip().lower()
        else:
            reasons.append(f"theme.name {_show(name)} is not one of: {', '.join(sorted(THEMES))}")

    colour = theme.get("colour")
    theme_colour = DEFAULT_THEME_COLOUR
    if colour is not None:
        if not isinstance(colour, str):
            reasons.append(f"theme.colour must be a string (got {_type_name(colour)})")
        elif not _COLOUR.fullmatch(colour):
            reasons.append(f"theme.colour {_show(colour)} must look like '#a1b2c3'")
        else:
            theme_colour = colour.lower()
    return theme_name, theme_colour


def _check_plans(doc: dict[str, Any], reasons: list[str]) -> tuple[Any, ...]:
    plans = doc.get("plans")
    if plans is None:
        return ()
    if not isinstance(plans, list):
        reasons.append(f"plans must be a list (got {_type_name(plans)})")
        return ()
    bad = [i for i, plan in enumerate(plans) if not isinstance(plan, dict)]
    for i in bad[:3]:
        reasons.append(f"plans[{i}] must be an object (got {_type_name(plans[i])})")
    if bad:
        return ()
    # Deep copy: the result must not alias the caller's (mutable) document.
    return tuple(copy.deepcopy(plans))


def _check_maintenance_window(doc: dict[str, Any], reasons: list[str]) -> str | None:
    """Optional ``maintenance_window`` text, e.g. ``"Sun 02:00-05:00 Europe/London"``."""
    raw = doc.get("maintenance_window")
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        reasons.append(f"maintenance_window must be a string (got {_type_name(raw)})")
        return None
    try:
        return format_window(parse_window(raw))
    except WindowError as exc:
        # WindowError messages show user values with repr(), truncated, like _show().
        reasons.append(f"maintenance_window: {exc}")
        return None


# --- syntax helpers -------------------------------------------------------------------------


def _email_problem(email: str) -> str | None:
    """Return why ``email`` is unacceptable, or None if its syntax is sane."""
    if len(email) <= EMAIL_MAX_LENGTH and _PLAIN_EMAIL.fullmatch(email):
        return None  # the common shape, which every rule accepts
    return _email_problem_in_full(email)


def _email_problem_in_full(email: str) -> str | None:
    """``_email_problem`` rule by rule, for what the one-match shortcut did not accept."""
    if len(email) > EMAIL_MAX_LENGTH:
        return f"longer than {EMAIL_MAX_LENGTH} characters"
    if not email.isascii():
        return "must be ASCII"
    if _ASCII_SPACE_OR_CONTROL.search(email):
        return "contains whitespace or a control character"
    if email.count("@") != 1:
        return "must contain exactly one '@'"
    local, domain = email.split("@")
    if not local or len(local) > EMAIL_LOCAL_MAX_LENGTH:
        return f"the part before '@' must be 1 to {EMAIL_LOCAL_MAX_LENGTH} characters"
    if not _EMAIL_LOCAL.fullmatch(local):
        return "the part before '@' has characters outside letters, digits and . _ % + ' -"
    why = _hostname_problem(domain.lower())
    if why is not None:
        return f"the domain {why}"
    return None


def _hostname_problem(host: str) -> str | None:
    """Return why lowercase ASCII ``host`` is not a public hostname, or None if it is one."""
    if len(host) > HOSTNAME_MAX_LENGTH:
        return f"is longer than {HOSTNAME_MAX_LENGTH} characters"
    labels = host.split(".")
    if len(labels) < 2:
        return "needs at least two labels (like example.com)"
    for label in labels:
        if not 1 <= len(label) <= LABEL_MAX_LENGTH:
            return f"has a label that is empty or longer than {LABEL_MAX_LENGTH} characters"
        if not _HOST_LABEL.fullmatch(label):
            return f"has an invalid label {_show(label)} (letters, digits, inner hyphens only)"
        if label.startswith("xn--"):
            # An ASCII "xn--" label passes the codec untouched; make sure it is real punycode
            # (bytes.decode("idna") re-encodes and compares) rather than lookalike garbage.
            try:
                label.encode("ascii").decode("idna")
            except UnicodeError:
                return f"has an invalid punycode label {_show(label)}"
    if labels[-1].isdigit():
        return "has an all-numeric top-level label (IP addresses are not allowed)"
    return None


def _first_forbidden_char(text: str) -> str | None:
    if text.isascii() and text.isprintable():  # the common case: no ASCII printable is forbidden
        return None
    for ch in text:
        if unicodedata.category(ch) in _FORBIDDEN_CATEGORIES:
            return ch
    return None


def _describe_char(ch: str) -> str:
    name = unicodedata.name(ch, "")
    code = f"U+{ord(ch):04X}"
    return f"{code} {name}" if name else code


def _normalised_names(names: Iterable[str], arg_name: str) -> frozenset[str]:
    if isinstance(names, str | bytes):
        raise TypeError(f"{arg_name} must be a collection of names, not a string")
    return frozenset(name.strip().lower() for name in names)


def _show(value: object) -> str:
    """Render a user value for a reason: repr (escapes control chars), truncated."""
    if isinstance(value, str):
        if len(value) > _SHOW_LIMIT:
            return repr(value[:_SHOW_LIMIT]) + "..."
        return repr(value)
    if value is None or isinstance(value, bool):
        return json.dumps(value)  # null/true/false: staff read these documents as JSON
    if isinstance(value, int | float):
        try:
            shown = repr(value)
        except ValueError:  # ints beyond Python's int->str digit limit
            return _type_name(value)
        return shown if len(shown) <= _SHOW_LIMIT else _type_name(value)
    return _type_name(value)


def _type_name(value: object) -> str:
    """JSON vocabulary for a Python value's type, as staff think in JSON, not Python."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
