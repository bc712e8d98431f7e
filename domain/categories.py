"""The catalog of case categories and the departments that handle them.

Departments are stationed in a center ("12+X": 12 core departments plus local
extras); a category names the department it usually goes to first.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import UnknownCategory

__all__ = ["CATEGORIES", "DEPARTMENTS", "Category", "category"]


DEPARTMENTS: dict[str, str] = {
    "justice-office": "司法所",
    "police": "公安",
    "court": "法庭",
    "petitions": "信访",
    "labour": "人社",
    "housing": "住建",
    "urban-management": "城管",
    "civil-affairs": "民政",
    "market-regulation": "市场监管",
    "health": "卫健",
    "fire": "消防",
    "education": "教育",
    "womens-federation": "妇联",
    "natural-resources": "自然资源",
    "transport": "交通运输",
    "ecology-environment": "生态环境",
    "emergency-management": "应急管理",
    "center": "综治中心",
}


@dataclass(frozen=True)
class Category:
    """A kind of matter a center takes in, with the department it goes to first."""

    code: str
    zh: str
    en: str
    department: str


def _catalog(*categories: Category) -> dict[str, Category]:
    return {c.code: c for c in categories}


CATEGORIES: dict[str, Category] = _catalog(
    Category("marriage-family", "婚姻家庭", "Marriage and family", "womens-federation"),
    Category("neighbour-dispute", "邻里纠纷", "Neighbour dispute", "justice-office"),
    Category(
        "land-boundary",
        "土地/宅基地边界",
        "Land or homestead boundary",
        "natural-resources",
    ),
    Category("labour-pay", "劳资纠纷/欠薪", "Labour dispute or unpaid wages", "labour"),
    Category("property-management", "物业纠纷", "Property management dispute", "housing"),
    Category("consumer", "消费纠纷", "Consumer dispute", "market-regulation"),
    Category("traffic-accident", "交通事故", "Traffic accident", "police"),
    Category("environment-noise", "环境噪声", "Environmental noise", "ecology-environment"),
    Category("housing-construction", "建设工程/房屋", "Construction or housing", "housing"),
    Category("medical", "医疗纠纷", "Medical dispute", "health"),
    Category("petition-letter", "信访事项", "Petition matter", "petitions"),
    Category(
        "public-safety-hazard",
        "安全隐患",
        "Public safety hazard",
        "emergency-management",
    ),
    Category("fire-lane-blocked", "消防通道堵塞", "Blocked fire lane", "fire"),
    Category("street-vending", "占道经营", "Street vending", "urban-management"),
    Category("crowd-gathering", "人员聚集", "Crowd gathering", "police"),
    Category("fight", "打架斗殴", "Fight", "police"),
    Category("elderly-call", "一键呼叫", "Elderly one-button call", "civil-affairs"),
    Category("other", "其他", "Other", "center"),
)


def category(code: str) -> Category:
    """The category with this code; raises UnknownCategory naming the code."""
    try:
        return CATEGORIES[code]
    except (KeyError, TypeError):
        known = ", ".join(CATEGORIES)
        msg = f"a case's category must be one in the catalog; {code!r} is not ({known})"
        raise UnknownCategory(msg) from None
