"""Deterministic descriptions and copy written from a product's facts alone.

Everything the composer writes is an attribute value (scrubbed of lexicon terms) inside a
fixed template, so its output is grounded and compliant by construction. It is the default
path for locales without a generator and the fallback when generated text cannot be trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

from shopstream.events import Channel
from shopstream_describer.compliance import Lexicon
from shopstream_describer.facts import Fact, ProductFacts
from shopstream_describer.text import fit, is_chinese, normalise, sentences

COMPOSER_ID = "shopstream-composer"
COMPOSER_VERSION = "composer-1"
MAX_BULLETS = 10
SEO_TITLE_LIMIT = {"en": 70, "zh": 30}

_EN_TEMPLATES = {
    "colour": "It comes in {value}.",
    "color": "It comes in {value}.",
    "primary colour": "It comes in {value}.",
    "material": "It is made of {value}.",
    "fabric": "It is made of {value}.",
    "size": "It is available in size {value}.",
    "fit": "It has a {value} fit.",
    "pattern": "It has a {value} pattern.",
    "style": "Its style is {value}.",
    "occasion": "It suits {value} occasions.",
    "care": "Care: {value}.",
}
_EN_GENDER = {
    "men": "It is designed for men.",
    "women": "It is designed for women.",
    "boys": "It is designed for boys.",
    "girls": "It is designed for girls.",
    "unisex": "It is a unisex design.",
}
_ZH_TEMPLATES = {
    "材质": "采用{value}材质",
    "面料": "选用{value}面料",
    "颜色": "{value}配色",
    "风格": "整体呈现{value}风格",
    "图案": "饰以{value}图案",
    "版型": "{value}版型",
    "尺码": "提供{value}尺码",
    "适用季节": "适合{value}穿着",
}
_COPY_TEMPLATES: dict[str, dict[Channel, tuple[str, ...]]] = {
    "en": {
        Channel.SMS: (
            "{name}: {highlight}. Shop now.",
            "New in: {name}, {highlight}.",
            "Take a look at {name} - {highlight}.",
            "{name} is here. {highlight}.",
        ),
        Channel.PUSH: (
            "{name}: {highlight}",
            "New in: {name}",
            "Just for you: {name}",
            "{highlight} - {name}",
        ),
        Channel.EMAIL_SUBJECT: (
            "{name}: {highlight}",
            "Meet {name}",
            "Now in store: {name}",
            "{highlight}: see {name}",
        ),
        Channel.SOCIAL_POST: (
            "Say hello to {name}: {highlight}. {details} Shop now.",
            "{name} has arrived. {details}",
            "Looking for {highlight}? Meet {name}. {details}",
            "New in store: {name}. {details}",
        ),
        Channel.BANNER: ("{name}", "New: {name}", "{highlight}", "Discover {name}"),
    },
    "zh": {
        Channel.SMS: (
            "{name}上新：{highlight}，欢迎选购。",
            "{name}已上架，{highlight}。",
            "为您推荐{name}，{highlight}。",
            "{name}到店，{highlight}，快来看看。",
        ),
        Channel.PUSH: (
            "{name}上新：{highlight}",
            "{name}已上架",
            "为你推荐：{name}",
            "{highlight}｜{name}",
        ),
        Channel.EMAIL_SUBJECT: (
            "{name}上新：{highlight}",
            "新品推荐：{name}",
            "{name}已上架",
            "{highlight}，{name}",
        ),
        Channel.SOCIAL_POST: (
            "{name}上新啦！{details}欢迎选购。",
            "推荐一款{name}：{details}",
            "{highlight}的{name}来了。{details}",
            "新品{name}。{details}",
        ),
        Channel.BANNER: ("{name}", "新品 {name}", "{highlight}", "{name}上新"),
    },
}


@dataclass(frozen=True)
class ComposedDescription:
    description: str
    bullet_points: list[str]
    seo_title: str


def _language(locale: str) -> str:
    return "zh" if is_chinese(locale) else "en"


def _clean_facts(facts: ProductFacts, lexicon: Lexicon) -> list[Fact]:
    cleaned = []
    for fact in facts.descriptive():
        value = lexicon.scrub(fact.value)
        if value:
            cleaned.append(Fact(lexicon.scrub(fact.key) or fact.key, value))
    return cleaned


def _grouped(facts: list[Fact]) -> list[tuple[str, list[str]]]:
    groups: dict[str, list[str]] = {}
    for fact in facts:
        groups.setdefault(fact.key, []).append(fact.value)
    return list(groups.items())


def product_name(facts: ProductFacts, lexicon: Lexicon) -> str:
    title = lexicon.scrub(facts.title) or facts.product_id
    brand = lexicon.scrub(facts.brand or "")
    if brand and normalise(brand) not in normalise(title):
        return (
            f"{brand}{title}"
            if is_chinese(facts.locale) and _language(title) == "zh"
            else (f"{brand} {title}")
        )
    return title


def compose_description(facts: ProductFacts, locale: str, lexicon: Lexicon) -> ComposedDescription:
    cleaned = _clean_facts(facts, lexicon)
    name = product_name(facts, lexicon)
    if _language(locale) == "zh":
        description = _describe_zh(name, cleaned)
        bullets = [f"{key}：{'、'.join(values)}" for key, values in _grouped(cleaned)]
    else:
        description = _describe_en(name, cleaned)
        bullets = [
            f"{key[:1].upper()}{key[1:]}: {', '.join(values)}" for key, values in _grouped(cleaned)
        ]
    limit = SEO_TITLE_LIMIT[_language(locale)]
    return ComposedDescription(description, bullets[:MAX_BULLETS], fit(name, limit, locale))


def _describe_en(name: str, facts: list[Fact]) -> str:
    parts = [f"This is the {name}."]
    rest: list[Fact] = []
    for key, values in _grouped(facts):
        lowered = key.casefold()
        value = _en_list(values)
        if lowered == "brand":
            if normalise(value) not in normalise(name):
                parts.append(f"It is made by {value}.")
        elif lowered == "category":
            parts.append(f"It belongs to the {value} category.")
        elif lowered == "gender" and all(v.casefold() in _EN_GENDER for v in values):
            parts.extend(_EN_GENDER[v.casefold()] for v in values)
        elif lowered in _EN_TEMPLATES:
            parts.append(_EN_TEMPLATES[lowered].format(value=value))
        else:
            rest.extend(Fact(key, v) for v in values)
    if rest:
        details = "; ".join(f"{key}: {', '.join(values)}" for key, values in _grouped(rest))
        parts.append(f"Details - {details}.")
    return " ".join(parts)


def _en_list(values: list[str]) -> str:
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


def _describe_zh(name: str, cleaned: list[Fact]) -> str:
    clauses: list[str] = []
    intro = f"这款{name}"
    for key, values in _grouped(cleaned):
        value = "、".join(values)
        if normalise(value) == normalise(name):
            continue
        if key == "brand":
            if normalise(value) not in normalise(name):
                intro = f"这款来自{value}的{name}"
        elif key == "category":
            clauses.append(f"属于{value}品类")
        elif key in _ZH_TEMPLATES:
            clauses.append(_ZH_TEMPLATES[key].format(value=value))
        else:
            clauses.append(f"{key}为{value}")
    if not clauses:
        return f"{intro}。"
    opening = intro + "，" + "，".join(clauses[:4]) + "。"
    more = ["此外，" + "，".join(clauses[at : at + 4]) + "。" for at in range(4, len(clauses), 4)]
    return opening + "".join(more)


def _short_name(facts: ProductFacts, lexicon: Lexicon) -> str:
    """Brand plus the title's last words (usually the product type), for tight channels."""
    title = lexicon.scrub(facts.title) or facts.product_id
    if _language(title) == "zh" or len(title.split()) <= 3:
        return product_name(facts, lexicon)
    short = " ".join(title.split()[-2:])
    brand = lexicon.scrub(facts.brand or "") or title.split()[0]
    return f"{brand} {short}"


def compose_copy(
    products: list[ProductFacts], channel: Channel, locale: str, limit: int, lexicon: Lexicon
) -> list[str]:
    """Composed copy variants for the channel that fit in `limit` characters, template order."""
    language = _language(locale)
    joiner = "、" if language == "zh" else " and "
    first = products[0]
    full_name = joiner.join(product_name(facts, lexicon) for facts in products[:2])
    short_name = joiner.join(_short_name(facts, lexicon) for facts in products[:2])
    cleaned = _clean_facts(first, lexicon)
    values = [
        fact.value
        for fact in cleaned
        if fact.key not in ("brand", "category")
        and normalise(fact.value) not in normalise(full_name)
    ]
    highlight = ("、" if language == "zh" else ", ").join(values[:2])
    # The English description opens by naming the product, which the template already does.
    details = (
        _describe_zh(full_name, cleaned)
        if language == "zh"
        else (" ".join(sentences(_describe_en(full_name, cleaned))[1:]))
    )
    variants = []
    for template in _COPY_TEMPLATES[language][channel]:
        if "{highlight}" in template and not highlight:
            continue
        for name, detail in ((full_name, details), (short_name, ""), (short_name, None)):
            if detail is None:
                variants.append(
                    fit(
                        template.format(name=name, highlight=highlight, details="").strip(),
                        limit,
                        locale,
                    )
                )
                break
            if "{details}" in template and not detail:
                continue
            text = template.format(name=name, highlight=highlight, details=detail).strip()
            if len(text) <= limit:
                variants.append(text)
                break
    if not variants:
        variants.append(fit(short_name, limit, locale))
    return [variant for variant in dict.fromkeys(variants) if variant]
