"""Functional and quality properties a small model invents, and the facts that support them."""

from __future__ import annotations

import pytest

from shopstream.events import ProductUpsertedPayload
from shopstream_describer.claims import FactIndex, extract_claims, ground
from shopstream_describer.facts import ProductFacts

pytestmark = pytest.mark.unit


def product(title: str, locale: str = "en", **attributes: str) -> ProductFacts:
    return ProductFacts.from_payload(
        ProductUpsertedPayload(product_id="p", title=title, locale=locale, attributes=attributes)
    )


TOP = product("上衣", "zh", 类型="上衣", 材质="棉", 颜色="白色", 风格="简约", 图案="纯色")


def unsupported(text: str, facts: ProductFacts) -> set[tuple[str, str]]:
    return {(claim.kind, claim.text) for claim in ground(text, FactIndex.of([facts])).unsupported}


def test_the_issue_example_shows_the_invented_properties() -> None:
    text = "这款简约风格的棉质白色上衣，采用纯色设计，简洁大方，面料轻薄透气"
    assert unsupported(text, TOP) == {("property", "轻薄"), ("property", "透气")}


@pytest.mark.parametrize(
    "term",
    [
        *("透气", "防水", "保暖", "速干", "抗菌", "防晒", "加厚", "轻薄", "耐磨", "弹力", "高弹"),
        *("亲肤", "吸汗", "抗起球", "不起球", "不掉色", "防静电", "保湿", "无毒", "耐用"),
    ],
)
def test_chinese_properties_are_claims(term: str) -> None:
    assert unsupported(f"这件上衣{term}。", TOP) == {("property", term)}


@pytest.mark.parametrize(
    "term",
    [
        *("breathable", "waterproof", "anti-bacterial", "machine-washable", "lightweight"),
        *("durable", "stretchy", "stretch", "moisture-wicking", "wrinkle-resistant"),
        *("long-lasting", "fade-resistant", "hypoallergenic"),
    ],
)
def test_english_properties_are_claims(term: str) -> None:
    tee = product("Cotton Tee", colour="white")
    assert unsupported(f"A white tee, {term} and soft.", tee) == {("property", term)}


def test_english_properties_need_an_attribute_that_states_them() -> None:
    shoe = product("Running Shoes", upper="breathable mesh", colour="grey")
    assert unsupported("Breathable grey running shoes, waterproof, machine-washable.", shoe) == {
        ("property", "waterproof"),
        ("property", "machine-washable"),
    }


def test_an_attribute_supports_a_property_in_its_own_words() -> None:
    assert not unsupported("这款上衣面料透气。", product("上衣", "zh", 面料="莫代尔 透气"))
    leggings = product("Leggings", fabric="92% nylon, 8% spandex", care="Machine wash cold")
    assert not unsupported("Stretchy, machine-washable leggings.", leggings)
    assert not unsupported("弹力十足。", product("裤", "zh", 材质="棉、氨纶"))
    assert not unsupported(
        "It is quick dry and anti bacterial.", product("Tee", finish="quick-dry, antibacterial")
    )


def test_a_negated_fact_supports_nothing() -> None:
    assert unsupported("可机洗。", product("毛衣", "zh", 洗涤="不可机洗")) == {
        ("property", "可机洗")
    }
    assert unsupported("Machine washable.", product("Coat", care="Do not machine wash")) == {
        ("property", "Machine washable")
    }
    assert unsupported("这款外套防水。", product("外套", "zh", 防水="否")) == {("property", "防水")}
    assert not unsupported("这款外套防水。", product("外套", "zh", 防水="是"))


def test_properties_are_not_found_inside_harmless_words() -> None:
    # 防水台 is a platform sole, a feature of the shoe, not a waterproofing claim.
    assert [(c.kind, c.text) for c in extract_claims("这双鞋带防水台。")] == [("feature", "防水台")]
    assert extract_claims("A stretcher on a lightweighting table.") == []
    assert extract_claims("Softly tailored for the weekend.") == []


def test_features_and_properties_are_different_kinds() -> None:
    found = {(c.kind, c.text) for c in extract_claims("Wireless, adjustable and waterproof.")}
    assert found == {("feature", "Wireless"), ("feature", "adjustable"), ("property", "waterproof")}


def test_a_price_the_product_does_not_have_is_an_unsupported_claim() -> None:
    priced = ProductFacts.from_payload(
        ProductUpsertedPayload(
            product_id="bag-1", title="Bag", attributes={}, price={"amount": 99, "currency": "CNY"}
        )
    )
    index = FactIndex.of([priced])
    invented = ground("裙的价格在3到4元之间，适合各种场合。", index)
    assert [claim.kind for claim in invented.unsupported] == ["price"]
    assert [claim.text for claim in ground("Now only $25!", index).unsupported] == ["$25"]
    assert ground("售价￥99，也就是99元。", index).unsupported == []


def test_garment_details_borrowed_from_other_products_are_unsupported() -> None:
    skirt = product("裙", "zh", 裙袖长="长袖", 裙领型="立领", 版型="显瘦", 裙长="半身裙")
    assert unsupported("这款立领长袖半身裙，显瘦有型。", skirt) == set()
    assert unsupported("短袖设计，圆领，宽松的剪裁，还有拉链。", skirt) == {
        ("detail", "短袖"),
        ("detail", "圆领"),
        ("detail", "宽松"),
        ("detail", "拉链"),
    }
    cufflinks = product("Gold-Toned Square Cufflinks", gender="Men", colour="Gold")
    assert unsupported(
        "Gold-toned square cufflinks, has a spread collar, long sleeves, curved hem.", cufflinks
    ) == {("detail", "spread collar"), ("detail", "long sleeves"), ("detail", "curved hem")}
    shirt = product("Men Blue Slim Fit Checked Casual Shirt", sleeves="long sleeves")
    assert not unsupported("Blue checked slim fit shirt with long sleeves.", shirt)
