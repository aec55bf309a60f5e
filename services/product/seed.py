"""Demo catalogue for `make run`: categories, brands, 60 approved on-shelf products, images, delivery table.

Idempotent: categories, brands and products are found by name and created only when missing, and
the delivery table is upserted, so running it again adds nothing. Product images are small PNGs
drawn with Pillow into a local directory that the gateway serves (`/media/catalog/...`).
"""

from __future__ import annotations

import colorsys
import hashlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw
from tqdm import tqdm

from services.product import service
from services.product.domain import Brand, Category, ProductDraft, SkuDraft
from services.product.uow import ProductUnitOfWork

SEED_ACTOR_ID = 0  # the seed, not a person, in the audit log
IMAGE_URL_PREFIX = "/media/catalog"  # served by the gateway from MEDIA_DIR/catalog

# parent -> children (multi-level: 手机数码 > 手机 > ...)
CATEGORIES: dict[str, list[str]] = {
    "手机数码": ["手机", "耳机音箱", "智能手表"],
    "电脑办公": ["笔记本", "键鼠外设"],
    "家用电器": ["厨房电器", "生活电器"],
    "居家日用": ["杯壶餐具", "收纳清洁"],
    "服饰运动": ["运动鞋", "T恤卫衣"],
    "食品生鲜": ["零食坚果", "茶饮冲调"],
}
BRANDS = ["华为", "小米", "Apple", "象印", "膳魔师", "耐克", "三只松鼠", "美的"]

# By full name, as the table keeps them (set_delivery_estimate would also take the short ones); 台湾, 香港 and 澳门 get "*".
PROVINCE_DAYS = {"*": 4, "上海市": 1, "江苏省": 1, "浙江省": 1, "安徽省": 2, "江西省": 2, "北京市": 2, "天津市": 2,
                 "广东省": 2, "福建省": 2, "山东省": 2, "湖北省": 2, "湖南省": 3, "四川省": 3, "重庆市": 3, "河南省": 2,
                 "河北省": 2, "山西省": 3, "陕西省": 3, "辽宁省": 3, "黑龙江省": 4, "吉林省": 4, "云南省": 4, "贵州省": 4,
                 "广西壮族自治区": 3, "海南省": 4, "甘肃省": 5, "青海省": 6, "宁夏回族自治区": 5, "内蒙古自治区": 5,
                 "新疆维吾尔自治区": 7, "西藏自治区": 8}

AFTER_SALES = "7天无理由退货（商品完好、不影响二次销售）；质量问题15天包换；全国联保一年。"


@dataclass(frozen=True)
class Template:
    """A product line the seed varies into several products."""

    category: str
    brand: str
    names: tuple[str, ...]
    subtitle: str
    description: str
    specs: tuple[tuple[str, tuple[str, ...]], ...]
    base_price_fen: int
    params: tuple[tuple[str, str], ...]
    weight_g: int


TEMPLATES = (
    Template("手机", "华为", ("华为 Mate 60 智能手机", "华为 Mate 60 Pro 智能手机", "华为 nova 12 5G手机",
                             "华为 Pura 70 影像旗舰手机"),
             "鸿蒙系统 超可靠玄武架构", "麒麟芯片，超光变XMAGE影像，卫星通话，长续航。",
             (("颜色", ("雅丹黑", "雅川青", "白沙银")), ("存储", ("12GB+256GB", "12GB+512GB"))), 549_900,
             (("屏幕", "6.69英寸 OLED"), ("电池", "5000mAh"), ("网络", "5G全网通")), 225),
    Template("手机", "Apple", ("Apple iPhone 15 手机", "Apple iPhone 15 Pro 手机", "Apple iPhone 15 Plus 手机"),
             "灵动岛 4800万像素主摄", "A16仿生芯片，USB-C接口，超视网膜XDR显示屏。",
             (("颜色", ("黑色", "蓝色", "粉色")), ("存储", ("128GB", "256GB"))), 599_900,
             (("屏幕", "6.1英寸"), ("芯片", "A16"), ("接口", "USB-C")), 171),
    Template("手机", "小米", ("小米14 徕卡影像手机", "Redmi K70 电竞手机", "小米 Civi 4 自拍手机"),
             "骁龙旗舰芯 徕卡光学镜头", "2K屏幕，澎湃OS，90W快充。",
             (("颜色", ("黑色", "白色", "岩石青")), ("存储", ("12GB+256GB", "16GB+512GB"))), 299_900,
             (("屏幕", "6.36英寸"), ("快充", "90W"), ("系统", "澎湃OS")), 193),
    Template("耳机音箱", "华为", ("华为 FreeBuds Pro 3 无线耳机", "华为 FreeClip 耳夹耳机", "华为 Sound X 音箱"),
             "智慧动态降噪", "星闪连接，高解析音质，长续航。",
             (("颜色", ("冰霜银", "陶瓷白")),), 119_900, (("续航", "31小时"), ("连接", "蓝牙5.2")), 60),
    Template("智能手表", "Apple", ("Apple Watch Series 9 智能手表", "Apple Watch Ultra 2 运动手表"),
             "全天候视网膜显示屏", "血氧检测，心率提醒，车祸检测。",
             (("表壳", ("41毫米", "45毫米")), ("颜色", ("午夜色", "星光色"))), 299_900,
             (("防水", "50米"), ("续航", "18小时")), 40),
    Template("笔记本", "小米", ("小米 Redmi Book 16 笔记本电脑", "小米笔记本 Pro 14 轻薄本"),
             "2.5K高色域屏 轻薄长续航", "13代酷睿处理器，16GB内存，1TB固态硬盘。",
             (("配置", ("i5/16GB/512GB", "i7/16GB/1TB")),), 459_900,
             (("屏幕", "16英寸 2.5K"), ("重量", "1.8kg")), 1800),
    Template("键鼠外设", "小米", ("小米无线鼠标 静音版", "小米机械键盘 87键"), "办公游戏两相宜",
             "人体工学设计，低延迟无线连接。", (("颜色", ("黑色", "白色")),), 9_900, (("连接", "2.4G无线"),), 90),
    Template("厨房电器", "美的", ("美的 电饭煲 4L 智能预约", "美的 空气炸锅 5L 家用", "美的 破壁机 加热料理机"),
             "一键智能 多功能菜单", "IH电磁加热，24小时预约，不粘内胆。",
             (("容量", ("3L", "4L", "5L")),), 29_900, (("功率", "860W"), ("内胆", "不粘涂层")), 3500),
    Template("生活电器", "美的", ("美的 电风扇 落地扇 遥控", "美的 加湿器 大容量 静音"), "静音节能",
             "直流变频电机，7档风速，定时关机。", (("颜色", ("白色", "灰色")),), 19_900,
             (("功率", "25W"), ("噪音", "26dB")), 4000),
    Template("杯壶餐具", "象印", ("象印 316不锈钢 保温杯 480ml", "象印 保温杯 儿童 吸管款", "象印 焖烧杯 500ml"),
             "长效保温保冷 一键开盖", "真空双层结构，保温6小时以上，内胆不粘涂层易清洗。",
             (("颜色", ("黑色", "白色", "粉色")), ("容量", ("360ml", "480ml"))), 19_900,
             (("材质", "不锈钢"), ("保温", "6小时")), 240),
    Template("杯壶餐具", "膳魔师", ("膳魔师 保温杯 大容量 户外", "膳魔师 不锈钢 焖烧罐", "膳魔师 咖啡杯 随行杯"),
             "高真空保温 轻量杯身", "304不锈钢内胆，密封防漏，轻巧便携。",
             (("颜色", ("深蓝", "米白")), ("容量", ("350ml", "500ml"))), 15_900, (("材质", "304不锈钢"),), 230),
    Template("收纳清洁", "小米", ("米家 扫地机器人 自动集尘", "米家 无线吸尘器 轻量版"), "智能规划 强劲吸力",
             "激光导航，自动回充，APP远程控制。", (("版本", ("标准版", "Pro版")),), 149_900,
             (("吸力", "4000Pa"), ("续航", "180分钟")), 3600),
    Template("运动鞋", "耐克", ("耐克 Air Max 270 跑步鞋", "耐克 Air Force 1 板鞋", "耐克 Pegasus 40 缓震跑鞋"),
             "经典气垫 缓震舒适", "透气网面鞋面，耐磨橡胶外底，日常跑步通勤皆宜。",
             (("颜色", ("黑白", "全白")), ("尺码", ("40", "41", "42", "43"))), 89_900,
             (("鞋面", "网布"), ("闭合", "系带")), 700),
    Template("T恤卫衣", "耐克", ("耐克 纯棉运动T恤 男款", "耐克 连帽卫衣 加绒"), "速干透气 宽松版型",
             "柔软棉质面料，经典Swoosh标志。", (("颜色", ("黑色", "白色")), ("尺码", ("M", "L", "XL"))), 19_900,
             (("面料", "棉"),), 250),
    Template("零食坚果", "三只松鼠", ("三只松鼠 每日坚果 750g", "三只松鼠 夏威夷果 奶油味", "三只松鼠 碧根果 260g",
                                    "三只松鼠 零食大礼包"),
             "年货送礼 营养健康", "精选原料，独立小包装，开袋即食。", (("规格", ("1袋", "2袋", "礼盒装")),),
             5_990, (("保质期", "180天"), ("产地", "安徽芜湖")), 800),
    Template("茶饮冲调", "三只松鼠", ("三只松鼠 冻干咖啡 速溶", "三只松鼠 花果茶 组合"), "即冲即饮",
             "冷热皆宜，低糖配方。", (("规格", ("12杯", "24杯")),), 3_990, (("保质期", "365天"),), 300),
)
PRODUCTS_WANTED = 60
SUFFIXES = ("", " 2024新款", " 限量版", " 升级款")


def image_file(directory: Path, text: str) -> str:
    """Draw (once) a small square PNG for `text` and return its public URL path."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    name = f"{digest}.png"
    target = directory / name
    if not target.exists():
        hue = int(digest[:4], 16) / 0xFFFF
        background = tuple(int(c * 255) for c in colorsys.hsv_to_rgb(hue, 0.35, 0.95))
        image = Image.new("RGB", (240, 240), background)  # type: ignore[arg-type]
        draw = ImageDraw.Draw(image)
        draw.rounded_rectangle((30, 30, 210, 210), radius=24, outline=(255, 255, 255), width=6)
        draw.text((50, 110), digest[:8], fill=(40, 40, 40))  # the default font has no CJK glyphs
        directory.mkdir(parents=True, exist_ok=True)
        image.save(target, "PNG", optimize=True)
    return f"{IMAGE_URL_PREFIX}/{name}"


def product_drafts() -> Iterator[tuple[Template, str]]:
    """(template, unique product name), PRODUCTS_WANTED of them, cycling through the templates' names."""
    seen = 0
    for suffix in SUFFIXES:
        for template in TEMPLATES:
            for name in template.names:
                yield template, name + suffix
                seen += 1
                if seen == PRODUCTS_WANTED:
                    return


def seed_catalog(uow_factory: Callable[[], ProductUnitOfWork], image_dir: Path, *, progress: bool = True) -> int:
    """Create what is missing of the demo catalogue; the number of products created."""
    for province, days in PROVINCE_DAYS.items():
        service.set_delivery_estimate(uow_factory(), province=province, days=days)
    category_ids = _ensure_categories(uow_factory, image_dir)
    brand_ids = _ensure_brands(uow_factory, image_dir)
    created = 0
    items = list(product_drafts())
    for index, (template, name) in enumerate(tqdm(items, desc="demo catalogue", unit="product", disable=not progress)):
        with uow_factory() as uow:
            if uow.products.by_name(name) is not None:
                continue
        price_step = (index * 7) % 5 * template.base_price_fen // 20
        combos = list(itertools.product(*(values for _, values in template.specs)))
        skus = tuple(SkuDraft(spec={spec_name: value for (spec_name, _), value in zip(template.specs, combo,
                                                                                      strict=True)},
                              price_fen=template.base_price_fen + price_step + position * template.base_price_fen // 10,
                              market_price_fen=(template.base_price_fen + price_step) * 6 // 5
                              + position * template.base_price_fen // 10,
                              stock=(0 if (index + position) % 11 == 0 else 5 if (index + position) % 7 == 0
                                     else 200),
                              weight_g=template.weight_g)
                     for position, combo in enumerate(combos))
        draft = ProductDraft(
            name=name, subtitle=template.subtitle, category_id=category_ids[template.category],
            brand_id=brand_ids[template.brand], description=f"{name}。{template.description}",
            images=tuple(image_file(image_dir, f"{name}#{n}") for n in range(3)), params=template.params,
            specs=template.specs, skus=skus, after_sales_policy=AFTER_SALES)
        view = service.create_product(uow_factory(), actor_id=SEED_ACTOR_ID, draft=draft)
        product_id = view.product.id
        assert product_id is not None
        service.submit_product(uow_factory(), actor_id=SEED_ACTOR_ID, product_id=product_id)
        service.audit_product(uow_factory(), actor_id=SEED_ACTOR_ID, product_id=product_id, approve=True)
        service.set_shelf(uow_factory(), actor_id=SEED_ACTOR_ID, product_id=product_id, on_shelf=True)
        created += 1
    return created


def _ensure_categories(uow_factory: Callable[[], ProductUnitOfWork], image_dir: Path) -> dict[str, int]:
    with uow_factory() as uow:
        existing = {(c.parent_id, c.name): c for c in uow.categories.all()}
        ids: dict[str, int] = {}
        for sort, (parent_name, children) in enumerate(CATEGORIES.items()):
            parent = existing.get((None, parent_name))
            if parent is None:
                parent = Category(name=parent_name, icon=image_file(image_dir, f"category:{parent_name}"), sort=sort)
                uow.categories.add(parent)
            assert parent.id is not None
            ids[parent_name] = parent.id
            for child_sort, child_name in enumerate(children):
                child = existing.get((parent.id, child_name))
                if child is None:
                    child = Category(name=child_name, parent_id=parent.id, sort=child_sort,
                                     icon=image_file(image_dir, f"category:{child_name}"))
                    uow.categories.add(child)
                assert child.id is not None
                ids[child_name] = child.id
        uow.commit()
    return ids


def _ensure_brands(uow_factory: Callable[[], ProductUnitOfWork], image_dir: Path) -> dict[str, int]:
    with uow_factory() as uow:
        existing = {b.name: b for b in uow.brands.all()}
        ids: dict[str, int] = {}
        for name in BRANDS:
            brand = existing.get(name)
            if brand is None:
                brand = Brand(name=name, logo=image_file(image_dir, f"brand:{name}"))
                uow.brands.add(brand)
            assert brand.id is not None
            ids[name] = brand.id
        uow.commit()
    return ids
