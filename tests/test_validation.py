"""Unit tests for sites.validation: hostile signup documents in, reasons out (no Django)."""

from __future__ import annotations

import copy
import random
import re
import unicodedata
from typing import Any

import pytest

from sites import validation
from sites.validation import (
    DEFAULT_THEME_COLOUR,
    DEFAULT_THEME_NAME,
    RESERVED_NAMES,
    THEMES,
    ValidationResult,
    ValidSignup,
    is_reserved_name,
    normalise_domain,
    slugify_site_name,
    validate_signup,
)

BASE = "subscribie.example"


def make_doc(**overrides: Any) -> dict[str, Any]:
    """A valid signup document; keyword overrides replace (or with ... delete) top-level keys."""
    doc: dict[str, Any] = {
        "_id": "signup-1",
        "_rev": "1-abc",
        "queue_state": "deploy",
        "company": {"name": "Bob's Bakery"},
        "users": ["owner@example.com"],
    }
    for key, value in overrides.items():
        if value is ...:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def validate(doc: object, **kwargs: Any) -> ValidationResult:
    kwargs.setdefault("base_domain", BASE)
    return validate_signup(doc, **kwargs)


def reasons_of(doc: object, **kwargs: Any) -> tuple[str, ...]:
    result = validate(doc, **kwargs)
    assert not result.ok
    assert result.signup is None
    assert result.reasons
    return result.reasons


def assert_clean(reasons: tuple[str, ...]) -> None:
    """No reason may contain a raw control/invisible character."""
    for reason in reasons:
        for ch in reason:
            assert unicodedata.category(ch) not in {"Cc", "Cf", "Cs", "Zl", "Zp"}, reason


# --- slugify -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Bob's Bakery", "bob-s-bakery"),
        ("Café Crème", "cafe-creme"),
        ("  --Hello,   World!!--  ", "hello-world"),
        ("Ünïcödé Shöp", "unicode-shop"),
        ("Straße", "strasse"),
        ("İstanbul Kebab", "istanbul-kebab"),
        ("\uff26\uff35\uff2c\uff2c\uff37\uff29\uff24\uff34\uff28", "fullwidth"),
        ("\u210cello", "hello"),  # BLACK-LETTER CAPITAL H
        ("\u0430pple", "pple"),  # Cyrillic a has no ASCII decomposition
        ("\u0440\u0430\u0443\u0440\u0430l", "l"),  # Cyrillic "paypa" + Latin l
        ("🍰🍰🍰", ""),
        ("a--b__c", "a-b-c"),
        ("123 Main St", "123-main-st"),
        ("", ""),
        ("$(rm -rf /)", "rm-rf"),
        ("title\n  image: evil", "title-image-evil"),
    ],
)
def test_slugify_site_name(text: str, slug: str) -> None:
    assert slugify_site_name(text) == slug


def test_slugify_output_alphabet() -> None:
    weird = "".join(chr(c) for c in range(0, 0x3000, 7))
    slug = slugify_site_name(weird)
    assert set(slug) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
    assert not slug.startswith("-") and not slug.endswith("-")
    assert "--" not in slug


# --- happy paths ---------------------------------------------------------------------------


def test_minimal_valid_signup_uses_defaults() -> None:
    result = validate(make_doc())
    assert result.ok
    assert result.reasons == ()
    assert result.signup == ValidSignup(
        slug="bob-s-bakery",
        title="Bob's Bakery",
        owner_email="owner@example.com",
        custom_domain=None,
        theme_name=DEFAULT_THEME_NAME,
        theme_colour=DEFAULT_THEME_COLOUR,
        plans=(),
    )


def test_full_valid_signup() -> None:
    plans = [{"title": "Bread box", "interval_amount": 1000, "extra": {"nested": [1, 2]}}]
    doc = make_doc(
        company={"name": "  Café Crème  ", "ignored": True},
        users=["Owner.Name+shop@Example.COM", "second@example.com"],
        site_name="Café Crème",
        custom_domain="Shop.BobsBakery.com.",
        theme={"name": "Jesmond", "colour": "#AA3355"},
        plans=plans,
        unknown_key={"whatever": 1},
    )
    result = validate(doc)
    assert result.ok, result.reasons
    signup = result.signup
    assert signup is not None
    assert signup.slug == "cafe-creme"
    assert signup.title == "Café Crème"
    assert signup.owner_email == "Owner.Name+shop@example.com"
    assert signup.custom_domain == "shop.bobsbakery.com"
    assert signup.theme_name == "jesmond"
    assert signup.theme_colour == "#aa3355"
    assert signup.plans == tuple(plans)
    # Kept as data, but not aliased: mutating the document later must not change the result.
    plans[0]["title"] = "changed"
    assert signup.plans[0]["title"] == "Bread box"


def test_site_name_preferred_over_company_name() -> None:
    result = validate(make_doc(site_name="bobs-bakery"))
    assert result.signup is not None and result.signup.slug == "bobs-bakery"


@pytest.mark.parametrize("site_name", [None, "", "   "])
def test_blank_site_name_falls_back_to_company_name(site_name: Any) -> None:
    result = validate(make_doc(site_name=site_name))
    assert result.signup is not None and result.signup.slug == "bob-s-bakery"


def test_idn_custom_domain_is_stored_as_punycode() -> None:
    result = validate(make_doc(custom_domain="bücher.example"))
    assert result.signup is not None
    assert result.signup.custom_domain == "xn--bcher-kva.example"


def test_punycode_custom_domain_accepted_as_is() -> None:
    result = validate(make_doc(custom_domain="xn--bcher-kva.example"))
    assert result.signup is not None
    assert result.signup.custom_domain == "xn--bcher-kva.example"


@pytest.mark.parametrize("empty", [None, ""])
def test_custom_domain_optional(empty: Any) -> None:
    result = validate(make_doc(custom_domain=empty))
    assert result.signup is not None and result.signup.custom_domain is None


def test_long_company_name_gives_a_shortened_slug() -> None:
    name = "The Extremely Long Named Artisanal Sourdough Bakery of Jesmond"
    result = validate(make_doc(company={"name": name}))
    assert result.signup is not None
    assert result.signup.slug == "the-extremely-long-named-artisanal-sourd"
    assert len(result.signup.slug) == 40
    # Cutting at a hyphen must not leave a trailing hyphen.
    result = validate(make_doc(company={"name": "a" * 39 + " bakery"}))
    assert result.signup is not None and result.signup.slug == "a" * 39


def test_homograph_custom_domain_is_stored_as_visible_punycode() -> None:
    result = validate(make_doc(custom_domain="\u0430pple.com"))  # Cyrillic a
    assert result.signup is not None
    assert result.signup.custom_domain is not None
    assert result.signup.custom_domain.startswith("xn--")
    assert result.signup.custom_domain.isascii()


def test_title_may_contain_punctuation_and_emoji() -> None:
    # A title is data (an env value), so YAML/shell/template text is harmless and allowed;
    # only control and invisible characters are refused.
    for title in ("$(rm -rf /)", "{{ config }}", "a: b", "O'Brien & Sons 🥐", "<script>"):
        result = validate(make_doc(company={"name": title}, site_name="safe-name"))
        assert result.ok, (title, result.reasons)
        assert result.signup is not None and result.signup.title == title


def test_extra_reserved_and_taken_accept_other_names() -> None:
    result = validate(
        make_doc(),
        extra_reserved=["shop"],
        taken_names={"other"},
        taken_domains={"other.com"},
    )
    assert result.ok


def test_validation_is_deterministic_and_does_not_mutate() -> None:
    doc = make_doc(custom_domain="bücher.example", plans=[{"a": 1}])
    before = copy.deepcopy(doc)
    assert validate(doc) == validate(doc)
    assert doc == before


def test_themes_allow_list() -> None:
    assert "jesmond" in THEMES
    assert DEFAULT_THEME_NAME in THEMES
    for name in sorted(THEMES):
        result = validate(make_doc(theme={"name": name}))
        assert result.signup is not None and result.signup.theme_name == name


# --- hostile inputs: one table, each row names the substring its reason must contain ---------

HOSTILE: list[tuple[str, Any, dict[str, Any], str]] = [
    # (id, document, validate kwargs, expected reason substring)
    ("doc-none", None, {}, "must be a JSON object (got null)"),
    ("doc-list", [make_doc()], {}, "must be a JSON object (got array)"),
    ("doc-string", '{"company": {}}', {}, "must be a JSON object (got string)"),
    ("doc-number", 42, {}, "must be a JSON object (got number)"),
    ("queue-completed", make_doc(queue_state="completed"), {}, "queue_state must be 'deploy'"),
    ("queue-missing", make_doc(queue_state=...), {}, "queue_state must be 'deploy'"),
    # company / title
    ("company-missing", make_doc(company=...), {}, "company is required"),
    ("company-string", make_doc(company="Bob's"), {}, "company must be an object (got string)"),
    ("company-list", make_doc(company=["Bob"]), {}, "company must be an object (got array)"),
    ("company-name-missing", make_doc(company={}), {}, "company.name is required"),
    ("company-name-number", make_doc(company={"name": 7}), {}, "company.name must be a string"),
    ("company-name-bool", make_doc(company={"name": True}), {}, "(got boolean)"),
    ("company-name-dict", make_doc(company={"name": {"a": 1}}), {}, "(got object)"),
    ("title-empty", make_doc(company={"name": "   "}, site_name="x-shop"), {}, "must not be empty"),
    (
        "title-yaml-newline",
        make_doc(company={"name": "title\n  image: evil"}),
        {},
        "company.name 'title\\n  image: evil' contains a control or invisible character",
    ),
    ("title-nul", make_doc(company={"name": "Bob\x00s"}), {}, "U+0000"),
    ("title-tab", make_doc(company={"name": "Bob\ts"}), {}, "U+0009"),
    ("title-cr", make_doc(company={"name": "Bob\rs"}), {}, "U+000D"),
    ("title-esc", make_doc(company={"name": "Bob\x1b[31m"}), {}, "U+001B"),
    ("title-bidi", make_doc(company={"name": "Bob\u202egnp.exe"}), {}, "U+202E"),
    ("title-zwsp", make_doc(company={"name": "Bo\u200bb"}), {}, "U+200B ZERO WIDTH SPACE"),
    ("title-bom", make_doc(company={"name": "\ufeffBob"}), {}, "U+FEFF"),
    ("title-line-sep", make_doc(company={"name": "Bob\u2028s"}), {}, "U+2028"),
    ("title-surrogate", make_doc(company={"name": "Bob\ud800"}), {}, "U+D800"),
    ("title-too-long", make_doc(company={"name": "B" * 101}), {}, "at most 100 characters"),
    # site name
    ("site-name-number", make_doc(site_name=123), {}, "site_name must be a string (got number)"),
    ("site-name-list", make_doc(site_name=["a"]), {}, "site_name must be a string (got array)"),
    ("site-name-emoji", make_doc(site_name="🍰🍰🍰"), {}, "has no ASCII letters or digits"),
    ("site-name-cyrillic", make_doc(site_name="ваке"), {}, "has no ASCII letters or digits"),
    ("site-name-too-short", make_doc(site_name="ab"), {}, "must be 3 to 40 characters (got 2)"),
    (
        "site-name-lookalike-short",
        make_doc(site_name="\u0430b"),  # Cyrillic a + Latin b -> "b"
        {},
        "must be 3 to 40 characters (got 1)",
    ),
    ("site-name-too-long", make_doc(site_name="a" * 41), {}, "(got 41)"),
    ("site-name-digit-start", make_doc(site_name="1st-bakery"), {}, "must start with a letter"),
    ("site-name-from-company", make_doc(company={"name": "42"}), {}, "site name '42'"),
    ("site-name-www", make_doc(site_name="www"), {}, "site name 'www' is reserved"),
    ("site-name-admin", make_doc(site_name="ADMIN"), {}, "site name 'admin' is reserved"),
    ("site-name-api", make_doc(site_name=" api "), {}, "site name 'api' is reserved"),
    ("site-name-kube", make_doc(site_name="kube-system"), {}, "'kube-system' is reserved"),
    ("site-name-kube-odd", make_doc(site_name="Kube_Proxy"), {}, "'kube-proxy' is reserved"),
    ("site-name-extra", make_doc(site_name="shop"), {"extra_reserved": ["SHOP"]}, "is reserved"),
    (
        "site-name-taken",
        make_doc(site_name="Bob's Bakery"),
        {"taken_names": {"bob-s-bakery"}},
        "site name 'bob-s-bakery' is already taken",
    ),
    (
        "site-name-shell",
        make_doc(site_name="$(rm -rf /)"),
        {"taken_names": {"rm-rf"}},
        "already taken",
    ),
    # users / owner email
    ("users-missing", make_doc(users=...), {}, "users is required"),
    ("users-string", make_doc(users="a@example.com"), {}, "users must be a list"),
    ("users-empty", make_doc(users=[]), {}, "at least one email address"),
    ("users-number", make_doc(users=[5]), {}, "users[0] must be a string (got number)"),
    ("users-mixed", make_doc(users=["a@example.com", None]), {}, "users[1] must be a string"),
    ("email-no-at", make_doc(users=["owner.example.com"]), {}, "exactly one '@'"),
    ("email-two-at", make_doc(users=["a@b@example.com"]), {}, "exactly one '@'"),
    ("email-space", make_doc(users=["own er@example.com"]), {}, "whitespace"),
    ("email-newline", make_doc(users=["owner@example.com\nBcc: x@y.z"]), {}, "whitespace"),
    ("email-nul", make_doc(users=["owner\x00@example.com"]), {}, "control character"),
    ("email-unicode", make_doc(users=["\u043ewner@example.com"]), {}, "must be ASCII"),
    ("email-no-dot", make_doc(users=["owner@localhost"]), {}, "at least two labels"),
    ("email-empty-local", make_doc(users=["@example.com"]), {}, "1 to 64 characters"),
    ("email-local-long", make_doc(users=["a" * 65 + "@example.com"]), {}, "1 to 64"),
    ("email-dots", make_doc(users=["a..b@example.com"]), {}, "the part before '@'"),
    ("email-shell", make_doc(users=["$(id)@example.com"]), {}, "the part before '@'"),
    ("email-quote", make_doc(users=['"a"@example.com']), {}, "the part before '@'"),
    ("email-bad-domain", make_doc(users=["a@-example.com"]), {}, "invalid label"),
    ("email-ip", make_doc(users=["a@127.0.0.1"]), {}, "all-numeric"),
    ("email-too-long", make_doc(users=["a@" + "b" * 250 + ".com"]), {}, "longer than 254"),
    # custom domain
    ("domain-number", make_doc(custom_domain=1), {}, "custom_domain must be a string"),
    ("domain-dict", make_doc(custom_domain={"a": 1}), {}, "(got object)"),
    ("domain-single-label", make_doc(custom_domain="localhost"), {}, "at least two labels"),
    ("domain-space", make_doc(custom_domain="shop .example.com"), {}, "whitespace"),
    ("domain-newline", make_doc(custom_domain="shop.com\nevil"), {}, "U+000A"),
    ("domain-zero-width", make_doc(custom_domain="exam\u200bple.com"), {}, "U+200B"),
    ("domain-empty-label", make_doc(custom_domain="shop..example.com"), {}, "not a valid domain"),
    ("domain-long-label", make_doc(custom_domain="a" * 64 + ".com"), {}, "not a valid domain"),
    (
        "domain-too-long",
        make_doc(custom_domain=".".join(["a" * 60] * 5) + ".com"),
        {},
        "longer than 253",
    ),
    ("domain-underscore", make_doc(custom_domain="my_shop.com"), {}, "invalid label"),
    ("domain-hyphen-edge", make_doc(custom_domain="-shop.com"), {}, "invalid label"),
    ("domain-ip", make_doc(custom_domain="10.0.0.1"), {}, "all-numeric"),
    ("domain-url", make_doc(custom_domain="https://shop.com/"), {}, "not a valid domain"),
    ("domain-port", make_doc(custom_domain="shop.com:8080"), {}, "invalid label"),
    ("domain-bad-punycode", make_doc(custom_domain="xn--zz.com"), {}, "invalid punycode"),
    ("domain-dot-only", make_doc(custom_domain="."), {}, "not a valid domain"),
    ("domain-is-base", make_doc(custom_domain=BASE), {}, "is under the platform domain"),
    (
        "domain-under-base",
        make_doc(custom_domain="Shop.Subscribie.Example."),
        {},
        "custom_domain 'shop.subscribie.example' is under the platform domain",
    ),
    (
        "domain-taken",
        make_doc(custom_domain="Shop.Example.com"),
        {"taken_domains": {"shop.example.com"}},
        "'shop.example.com' is already used by another site",
    ),
    (
        "domain-idn-taken",
        make_doc(custom_domain="bücher.example"),
        {"taken_domains": {"xn--bcher-kva.example"}},
        "already used",
    ),
    # theme
    ("theme-string", make_doc(theme="jesmond"), {}, "theme must be an object (got string)"),
    ("theme-name-unknown", make_doc(theme={"name": "evil"}), {}, "theme.name 'evil' is not one"),
    ("theme-name-path", make_doc(theme={"name": "../../etc"}), {}, "is not one of"),
    ("theme-name-number", make_doc(theme={"name": 3}), {}, "theme.name must be a string"),
    ("colour-short", make_doc(theme={"colour": "#abc"}), {}, "theme.colour '#abc' must look"),
    ("colour-named", make_doc(theme={"colour": "red"}), {}, "must look like"),
    ("colour-no-hash", make_doc(theme={"colour": "aa3355"}), {}, "must look like"),
    ("colour-newline", make_doc(theme={"colour": "#aa3355\n"}), {}, "'#aa3355\\n' must look"),
    ("colour-css-inject", make_doc(theme={"colour": "#aa3355;}"}), {}, "must look like"),
    ("colour-not-hex", make_doc(theme={"colour": "#gg3355"}), {}, "must look like"),
    ("colour-number", make_doc(theme={"colour": 0xAA3355}), {}, "theme.colour must be a string"),
    # plans
    ("plans-dict", make_doc(plans={"a": 1}), {}, "plans must be a list (got object)"),
    ("plans-item-string", make_doc(plans=["gold"]), {}, "plans[0] must be an object"),
]


@pytest.mark.parametrize(
    ("doc", "kwargs", "expected"),
    [pytest.param(doc, kwargs, expected, id=case_id) for case_id, doc, kwargs, expected in HOSTILE],
)
def test_hostile_documents_are_refused(doc: Any, kwargs: dict[str, Any], expected: str) -> None:
    reasons = reasons_of(doc, **kwargs)
    assert any(expected in reason for reason in reasons), reasons
    assert_clean(reasons)


def test_all_reasons_are_collected() -> None:
    doc = {
        "queue_state": "deploy",
        "company": {"name": "Bad\nTitle"},
        "site_name": "www",
        "users": ["not-an-email"],
        "custom_domain": "shop." + BASE,
        "theme": {"name": "evil", "colour": "red"},
        "plans": "gold",
    }
    reasons = reasons_of(doc)
    fields = ["company.name", "site name 'www'", "users[0]", "custom_domain", "theme.name"]
    fields += ["theme.colour", "plans"]
    for field in fields:
        assert any(field in reason for reason in reasons), (field, reasons)
    assert len(reasons) == len(fields)


def test_missing_everything() -> None:
    reasons = reasons_of({})
    assert reasons == (
        "queue_state must be 'deploy' (got null)",
        "company is required (an object with a name)",
        "users is required (the first user is the site owner)",
    )


def test_reasons_truncate_overlong_values() -> None:
    reasons = reasons_of(make_doc(company={"name": "x\n" * 10_000}))
    assert all(len(reason) < 300 for reason in reasons), reasons


def test_hostile_number_does_not_crash() -> None:
    # Python refuses to str() ints beyond ~4300 digits; the reason must still be produced.
    reasons = reasons_of(make_doc(queue_state=10**5000))
    assert any("queue_state" in reason and "number" in reason for reason in reasons)


def test_taken_names_must_not_be_a_string() -> None:
    # "bob" in "bobs-bakery" is a substring test, not membership: a programmer error.
    with pytest.raises(TypeError):
        validate(make_doc(), taken_names="bob-s-bakery-and-more")
    with pytest.raises(TypeError):
        validate(make_doc(), extra_reserved="shop")


def test_result_ok_property() -> None:
    assert ValidationResult(None, ("x",)).ok is False
    assert validate(make_doc()).ok is True


def test_reserved_names() -> None:
    assert {"www", "admin", "api", "mail", "default", "subscribie"} <= RESERVED_NAMES
    assert is_reserved_name("kube-anything")
    assert not is_reserved_name("kubernetes-fan")  # prefix is "kube-", not "kube"
    assert is_reserved_name("shop", ["Shop"])
    assert not is_reserved_name("bobs-bakery")


@pytest.mark.parametrize(
    ("raw", "ascii_form"),
    [
        ("bücher.example", "xn--bcher-kva.example"),
        ("EXAMPLE.com.", "example.com"),
        ("münchen.de", "xn--mnchen-3ya.de"),
    ],
)
def test_normalise_domain(raw: str, ascii_form: str) -> None:
    assert normalise_domain(raw) == ascii_form


def test_normalise_domain_rejects_impossible() -> None:
    with pytest.raises(ValueError):
        normalise_domain("a" * 64 + ".com")


def _email_like(rng: random.Random) -> str:
    """A random string near an email address's shape: the edges the shortcut must respect."""
    pieces = ["a", "Z", "9", ".", "-", "_", "%", "+", "'", "xn--", "XN--", "é", " ", "\n", "@"]
    part = lambda n: "".join(rng.choice(pieces) for _ in range(rng.randint(0, n)))  # noqa: E731
    local = rng.choice([part(6), "a" * rng.choice([1, 63, 64, 65])])
    labels = [rng.choice([part(5), "b" * rng.choice([1, 62, 63, 64]), "7", "com"])]
    labels += [rng.choice([part(4), "c", "123", "x-y"]) for _ in range(rng.randint(0, 3))]
    return f"{local}@{'.'.join(labels)}" + rng.choice(["", "", ".", "\n", "@x.com"])


def test_email_shortcut_agrees_with_every_rule() -> None:
    # The one-match shortcut for plain addresses must never accept what the rules refuse.
    rng = random.Random(20261204)
    emails = [_email_like(rng) for _ in range(20_000)]
    emails += ["a" * 64 + "@" + ".".join(["b" * 63] * 3) + ".com", "x@" + "a." * 130 + "com"]
    accepted = 0
    for email in emails:
        assert validation._email_problem(email) == validation._email_problem_in_full(email), email
        accepted += validation._email_problem(email) is None
    assert 500 < accepted < len(emails) - 500  # both ways are exercised


def test_slugify_turns_each_run_of_other_characters_into_one_hyphen() -> None:
    # The definition, as a regular expression, against random text of every kind of character.
    rng = random.Random(4)
    alphabet = "aZ9-_ .!\t\n\x00\x7féß\u0130\u210c\u0301Жя😀\u200b"
    for _ in range(5_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        folded = unicodedata.normalize("NFKD", text.casefold())
        folded = "".join(ch for ch in folded if not unicodedata.combining(ch)).casefold()
        assert slugify_site_name(text) == re.sub("[^a-z0-9]+", "-", folded).strip("-"), text
