"""One spelling per province: formats.province_full_name maps a full or common short name to the full one."""

from __future__ import annotations

import pytest

from services.common import formats

SHORT_TO_FULL = {
    "北京": "北京市", "天津": "天津市", "河北": "河北省", "山西": "山西省", "内蒙古": "内蒙古自治区", "辽宁": "辽宁省",
    "吉林": "吉林省", "黑龙江": "黑龙江省", "上海": "上海市", "江苏": "江苏省", "浙江": "浙江省", "安徽": "安徽省",
    "福建": "福建省", "江西": "江西省", "山东": "山东省", "河南": "河南省", "湖北": "湖北省", "湖南": "湖南省",
    "广东": "广东省", "广西": "广西壮族自治区", "海南": "海南省", "重庆": "重庆市", "四川": "四川省", "贵州": "贵州省",
    "云南": "云南省", "西藏": "西藏自治区", "陕西": "陕西省", "甘肃": "甘肃省", "青海": "青海省",
    "宁夏": "宁夏回族自治区", "新疆": "新疆维吾尔自治区", "台湾": "台湾省", "香港": "香港特别行政区",
    "澳门": "澳门特别行政区",
}


def test_each_province_has_exactly_its_common_short_name() -> None:
    assert formats.PROVINCE_SHORT_NAMES == SHORT_TO_FULL


@pytest.mark.parametrize(("name", "full"), [*SHORT_TO_FULL.items(), *((f, f) for f in formats.PROVINCES)])
def test_a_full_or_short_name_is_the_full_name(name: str, full: str) -> None:
    assert formats.province_full_name(name) == full


@pytest.mark.parametrize("name", ["", " ", "上海 ", " 上海市", "Shanghai", "shanghai", "沪", "内蒙", "广西壮族",
                                  "新疆维吾尔", "上海市浦东新区", "广东 深圳", "*", "上海\x00", "火星", "中国"])
def test_anything_else_names_no_province(name: str) -> None:
    assert formats.province_full_name(name) is None
