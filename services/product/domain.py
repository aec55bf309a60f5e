"""Product domain: catalogue, SPU/SKU rules, the audit state machine and stock reservations. No I/O."""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from services.common import formats
from services.common.errors import Conflict, DomainError, ErrorKind, InvalidInput, NotFound

LOW_STOCK = 10                                    # at or below this a SKU shows "low"
RESERVATION_TTL = timedelta(hours=2)              # safety net: longer than any order's payment deadline
DEFAULT_DELIVERY_DAYS = 3                         # when the province is not in the delivery table
DEFAULT_PROVINCE = "*"                            # the delivery table's fallback row
MAX_SKUS = 200
MAX_IMAGES = 20
SKU_PRICE_MAX_FEN = formats.SKU_PRICE_MAX_FEN
MAX_SPECS, SPEC_NAME_MAX, SPEC_VALUE_MAX = formats.MAX_SPECS, formats.SPEC_NAME_MAX, formats.SPEC_VALUE_MAX
MAX_PARAMS, PARAM_NAME_MAX, PARAM_VALUE_MAX = 50, 50, 500
URL_MAX = 512
CATEGORY_NAME_MAX = BRAND_NAME_MAX = 64
MAX_DELIVERY_DAYS = 60
NAME_MAX, SUBTITLE_MAX, DESCRIPTION_MAX = 100, 200, 20_000
# 限购: the most units of a product one shopper may hold in orders (0: no limit); as many as one order line may take.
MAX_PER_SHOPPER = 999
# What a cart shows for a product off sale that was never approved: neither its name nor its images were audited.
UNAPPROVED_NAME = "商品已下架"
# In a name, a spec or a parameter: C0 and C1 controls, bidirectional embeddings, overrides and isolates (U+202E
# shows "华为06 etaM" as "华为Mate 60"), and zero-width characters other than the joiner emoji sequences need.
HIDDEN_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064"
                              "\u2066-\u2069\ufeff]")


def delivery_province(name: str) -> str | None:
    """The delivery table's row for `name`: DEFAULT_PROVINCE itself, or a province by its full name (as orders ship
    to it and WeChat names it) whether named in full or short; None for anything else."""
    return DEFAULT_PROVINCE if name == DEFAULT_PROVINCE else formats.province_full_name(name)


class Status(enum.StrEnum):
    DRAFT = "DRAFT"
    PENDING_AUDIT = "PENDING_AUDIT"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class ReservationStatus(enum.StrEnum):
    RESERVED = "RESERVED"
    CONFIRMED = "CONFIRMED"
    RELEASED = "RELEASED"   # the order was cancelled
    EXPIRED = "EXPIRED"     # the sweep put the units back on sale (a late order-paid takes them again if it can)


class Sort(enum.StrEnum):
    RELEVANCE = "relevance"
    NEWEST = "newest"
    PRICE_ASC = "price_asc"
    PRICE_DESC = "price_desc"
    SALES = "sales"


class OutOfStock(DomainError):
    kind = ErrorKind.BUSINESS_RULE


def stock_status(stock: int) -> str:
    """What shoppers see instead of a count."""
    if stock <= 0:
        return "sold_out"
    return "low" if stock <= LOW_STOCK else "in_stock"


def spec_key(spec: dict[str, str]) -> str:
    """A canonical text for a spec combination: the same values in any key order give the same key."""
    return json.dumps(spec, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


@dataclass(eq=False)
class Category:
    name: str
    parent_id: int | None = None
    icon: str = ""
    sort: int = 0
    id: int | None = None


@dataclass(eq=False)
class Brand:
    name: str
    logo: str = ""
    id: int | None = None


def descendants(categories: Iterable[Category], root_id: int) -> set[int]:
    """`root_id` and every category below it, at any depth."""
    children: dict[int | None, list[int]] = {}
    for category in categories:
        assert category.id is not None
        children.setdefault(category.parent_id, []).append(category.id)
    found, todo = {root_id}, [root_id]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def category_paths(categories: Iterable[Category], category_ids: Iterable[int]) -> dict[int, tuple[int, ...]]:
    """Each of `category_ids` with its ancestors, from its root down and ending with itself, as the tree is now
    (a category moved since a product was filed under it is read where it is). A coupon limited to a category
    applies to products filed at any depth below it (the member service's CouponTemplate.quote)."""
    parents = {category.id: category.parent_id for category in categories}
    paths = {}
    for category_id in category_ids:
        path = [category_id]
        while (parent := parents.get(path[-1])) is not None and parent not in path:  # a tree: never loops
            path.append(parent)
        paths[category_id] = tuple(reversed(path))
    return paths


@dataclass(eq=False)
class Sku:
    spec: dict[str, str]
    spec_key: str
    price_fen: int
    market_price_fen: int = 0
    stock: int = 0
    weight_g: int = 0
    sales: int = 0
    active: bool = True                           # a SKU dropped by an edit stays for the orders that name it
    product_id: int | None = None
    id: int | None = None


@dataclass(frozen=True)
class SkuOffer:
    """A SKU as carts and checkout see it, with what they need of its product (not the whole product)."""

    sku: Sku
    product_id: int
    name: str          # the product's
    category_id: int
    brand_id: int
    image: str         # the product's first image, "" for none
    on_sale: bool      # the product approved and on the shelf, the SKU active
    category_path: tuple[int, ...] = ()  # category_id's ancestors, root first, then itself (category_paths)
    max_per_shopper: int = 0  # the product's purchase limit per shopper (Product.max_per_shopper); 0: none

    @classmethod
    def of(cls, product: Product, sku: Sku) -> SkuOffer:
        return cls.shown(sku, product_id=product.id or 0, status=product.status, on_shelf=product.on_shelf,
                         name=product.name, images=product.images, approved_name=product.approved_name,
                         approved_image=product.approved_image, category_id=product.category_id,
                         brand_id=product.brand_id, max_per_shopper=product.max_per_shopper)

    @classmethod
    def shown(cls, sku: Sku, *, product_id: int, status: str, on_shelf: bool, name: str, images: Sequence[str],
              approved_name: str, approved_image: str, category_id: int, brand_id: int,
              max_per_shopper: int = 0) -> SkuOffer:
        """The SKU as carts and checkout may see it: its product's approved name and image (Product.shopper_face)
        and, off sale, no prices at all (0).

        Off sale, the SKU's prices may be an edit's awaiting audit (an edit of an approved product takes it off
        the shelf), or a rejected one's: never approved, so never shown or charged. Nothing needs them: an off-sale
        SKU cannot be added or checked out, and a cart line of one shows the price it was added at.
        """
        on_sale = Product.shown(status, on_shelf) and sku.active
        face_name, image = Product.shopper_face(status, name=name, images=images, approved_name=approved_name,
                                                approved_image=approved_image)
        if not on_sale:
            sku = replace(sku, price_fen=0, market_price_fen=0)
        return cls(sku, product_id, face_name, category_id, brand_id, image, on_sale,
                   max_per_shopper=max_per_shopper)


@dataclass(frozen=True)
class SkuDraft:
    spec: dict[str, str]
    price_fen: int
    market_price_fen: int = 0
    stock: int = 0
    weight_g: int = 0


@dataclass(frozen=True)
class ProductDraft:
    """What staff submit to create or edit a product (validated by `validate`)."""

    name: str
    category_id: int
    brand_id: int
    skus: tuple[SkuDraft, ...]
    subtitle: str = ""
    description: str = ""
    images: tuple[str, ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    specs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    after_sales_policy: str = ""
    max_per_shopper: int = 0  # 限购: units one shopper may hold in orders, 0..MAX_PER_SHOPPER (0: no limit)

    def validate(self, stored: Product | None = None, *, category_exists: bool = True,
                 brand_exists: bool = True) -> ProductDraft:
        """Field errors all at once, as InvalidInput with details per field; the category and brand it names too,
        as the use case found them (`category_exists`, `brand_exists`).

        An edit passes the `stored` product: a value it keeps as stored passes the rules made since it was saved
        (our-media-or-https images, no padded spec names or values, no hidden characters, no market price under
        the price), so an edit sending back what it read is not refused for a value it does not change. A new
        product, and any value that changes, meets every rule.
        """
        problems: dict[str, object] = {}
        kept = _Kept.of(stored)
        if not self.name.strip() or len(self.name) > NAME_MAX:
            problems["name"] = f"1-{NAME_MAX} characters"
        if not category_exists:
            problems["category_id"] = "no such category"
        if not brand_exists:
            problems["brand_id"] = "no such brand"
        if not 0 <= self.max_per_shopper <= MAX_PER_SHOPPER:
            problems["max_per_shopper"] = f"0 (no limit) to {MAX_PER_SHOPPER}"
        if len(self.subtitle) > SUBTITLE_MAX:
            problems["subtitle"] = f"at most {SUBTITLE_MAX} characters"
        if len(self.description) > DESCRIPTION_MAX:
            problems["description"] = f"at most {DESCRIPTION_MAX} characters"
        if len(self.images) > MAX_IMAGES or any(not 0 < len(url) <= URL_MAX
                                                or not (formats.PRODUCT_IMAGE_URL_PATTERN.fullmatch(url)
                                                        or ("image", url) in kept.texts)
                                                for url in self.images):
            problems["images"] = (f"at most {MAX_IMAGES} URLs of 1-{URL_MAX} characters: /media/... paths or "
                                  "https:// URLs")
        if len(self.params) > MAX_PARAMS or any(not 0 < len(name) <= PARAM_NAME_MAX or len(value) > PARAM_VALUE_MAX
                                                for name, value in self.params):
            problems["params"] = (f"at most {MAX_PARAMS}, names 1-{PARAM_NAME_MAX} and values up to "
                                  f"{PARAM_VALUE_MAX} characters")
        if len(self.specs) > MAX_SPECS:
            problems["specs"] = f"at most {MAX_SPECS} specs"
        spec_names = [name for name, _ in self.specs]
        # "黑" and "黑 " would show shoppers two identical choices, each its own SKU: padded text is refused
        if len(set(spec_names)) != len(spec_names) or any(not _trimmed(name) and ("spec", name) not in kept.texts
                                                          for name in spec_names):
            problems["specs"] = "spec names must be non-empty, unique and without surrounding spaces"
        for name, values in self.specs:
            if len(name) > SPEC_NAME_MAX or any(len(v) > SPEC_VALUE_MAX for v in values):
                problems["specs"] = f"spec names up to {SPEC_NAME_MAX} characters, values up to {SPEC_VALUE_MAX}"
            elif not values or len(set(values)) != len(values) or any(
                    not _trimmed(v) and v not in kept.spec_values.get(name, ()) for v in values):
                problems[f"specs.{name}"] = "values must be non-empty, unique and without surrounding spaces"
        if not self.skus:
            problems["skus"] = "at least one SKU"
        elif len(self.skus) > MAX_SKUS:
            problems["skus"] = f"at most {MAX_SKUS}"
        allowed = dict(self.specs)
        seen: set[str] = set()
        for index, sku in enumerate(self.skus):
            where = f"skus.{index}"
            if sku.price_fen <= 0:
                problems[f"{where}.price_fen"] = "must be greater than 0"
            elif sku.price_fen > SKU_PRICE_MAX_FEN:
                problems[f"{where}.price_fen"] = f"at most {SKU_PRICE_MAX_FEN}"
            if sku.market_price_fen < 0:
                problems[f"{where}.market_price_fen"] = "must be 0 (none) or more"
            elif sku.market_price_fen > SKU_PRICE_MAX_FEN:
                problems[f"{where}.market_price_fen"] = f"at most {SKU_PRICE_MAX_FEN}"
            elif (0 < sku.market_price_fen < sku.price_fen  # a crossed-out price under the price: a fake discount
                  and kept.crossed_market_prices.get(spec_key(sku.spec)) != sku.market_price_fen):
                problems[f"{where}.market_price_fen"] = "must be 0 (none) or at least the price"
            if sku.stock < 0:
                problems[f"{where}.stock"] = "must be 0 or more"
            if sku.weight_g < 0:
                problems[f"{where}.weight_g"] = "must be 0 or more"
            if set(sku.spec) != set(allowed) or any(v not in allowed[k] for k, v in sku.spec.items()):
                problems[f"{where}.spec"] = "must give one declared value for every declared spec"
            key = spec_key(sku.spec)
            if key in seen:
                problems[f"{where}.spec"] = "duplicate spec combination"
            seen.add(key)
        if any("\x00" in text for text in self._texts()):
            problems["product"] = "text must not contain NUL characters"
        elif any(HIDDEN_CHARACTER.search(text) and (kind, text) not in kept.texts
                 for kind, text in self._single_line_texts()):
            problems["product"] = "single-line text must not contain control, bidirectional or zero-width characters"
        if problems:
            raise InvalidInput("PRODUCT_INVALID", "the product is invalid", details=problems)
        return self

    def _texts(self) -> Iterable[str]:
        yield from (self.description, self.after_sales_policy)
        yield from (text for _, text in self._single_line_texts())

    def _single_line_texts(self) -> Iterable[tuple[str, str]]:
        """(kind, text): a text is kept when the stored product holds the same text as the same kind."""
        yield from (("name", self.name), ("subtitle", self.subtitle), *(("image", url) for url in self.images))
        for name, value in self.params:
            yield from (("param", name), ("param", value))
        for name, values in self.specs:
            yield from (("spec", name), *(("spec", value) for value in values))
        for sku in self.skus:
            yield from (("spec", text) for text in (*sku.spec.keys(), *sku.spec.values()))


@dataclass(frozen=True)
class _Kept:
    """What an edit may send back unchanged although rules made since refuse it (ProductDraft.validate)."""

    texts: frozenset[tuple[str, str]] = frozenset()               # (kind, text) as _single_line_texts names them
    spec_values: Mapping[str, frozenset[str]] = field(default_factory=dict)   # spec name -> its values
    crossed_market_prices: Mapping[str, int] = field(default_factory=dict)    # spec key -> a market price under
    #                                                                           the price, as stored

    @classmethod
    def of(cls, stored: Product | None) -> _Kept:
        if stored is None:
            return cls()
        draft = ProductDraft(
            name=stored.name, category_id=stored.category_id, brand_id=stored.brand_id, skus=(),
            subtitle=stored.subtitle, images=tuple(stored.images),
            params=tuple((p["name"], p["value"]) for p in stored.params),
            specs=tuple((s["name"], tuple(s["values"])) for s in stored.specs))
        return cls(texts=frozenset(draft._single_line_texts()),
                   spec_values={s["name"]: frozenset(s["values"]) for s in stored.specs},
                   crossed_market_prices={sku.spec_key: sku.market_price_fen for sku in stored.skus
                                          if 0 < sku.market_price_fen < sku.price_fen})


def _trimmed(text: str) -> bool:
    """Non-empty, with no spaces around it."""
    return bool(text) and text == text.strip()


@dataclass(eq=False)
class Product:
    """An SPU with its SKUs, moving DRAFT -> PENDING_AUDIT -> APPROVED | REJECTED; only APPROVED goes on shelf.

    Editing an APPROVED product sends it back to audit and off the shelf: shoppers only ever
    see prices and specs an admin approved (no silent price change on a live product). A
    REJECTED product that is edited becomes a DRAFT again. `version` counts the edits: an edit
    names the version its form was read at, so a form read before another admin's edit cannot
    silently undo it.
    """

    name: str
    category_id: int
    brand_id: int
    created_at: datetime
    updated_at: datetime
    subtitle: str = ""
    description: str = ""
    images: list[str] = field(default_factory=list)
    params: list[dict[str, str]] = field(default_factory=list)
    specs: list[dict[str, Any]] = field(default_factory=list)
    after_sales_policy: str = ""
    status: str = Status.DRAFT
    on_shelf: bool = False
    reject_reason: str = ""
    price_fen: int = 0
    market_price_fen: int = 0
    sales: int = 0
    skus: list[Sku] = field(default_factory=list)
    version: int = 1
    approved_name: str = ""   # the name and first image at the last approval ("": never approved): what shoppers
    approved_image: str = ""  # holding it in a cart see while an edit waits for audit
    # 限购: the most units one shopper may hold in their orders that hold or took stock (the order service checks it
    # at checkout); 0: no limit. Staff set it as any other content: an edit of it goes back to audit.
    max_per_shopper: int = 0
    id: int | None = None

    @classmethod
    def create(cls, draft: ProductDraft, now: datetime, *, category_exists: bool = True,
               brand_exists: bool = True) -> Product:
        """A new DRAFT product; PRODUCT_INVALID (every problem at once) unless the draft is valid
        (ProductDraft.validate) and names a category and a brand that exist."""
        draft.validate(category_exists=category_exists, brand_exists=brand_exists)
        product = cls(name=draft.name, category_id=draft.category_id, brand_id=draft.brand_id,
                      created_at=now, updated_at=now)
        product.apply(draft, now)
        return product

    @property
    def active_skus(self) -> list[Sku]:
        return sorted((sku for sku in self.skus if sku.active), key=lambda sku: sku.id or 0)

    @property
    def retired_stocked_skus(self) -> list[Sku]:
        """Retired SKUs still holding stock: retired with it before edits refused that (migration 0007), or given
        units back since (a return, a paid cancellation, a reservation released). Staff see them apart (write the
        stock off, or add the spec back to sell it); shoppers never."""
        return sorted((sku for sku in self.skus if not sku.active and sku.stock > 0), key=lambda sku: sku.id or 0)

    @property
    def visible(self) -> bool:
        return self.shown(self.status, self.on_shelf)

    @staticmethod
    def shown(status: str, on_shelf: bool) -> bool:
        """Shoppers see (and may buy) a product approved and on the shelf."""
        return status == Status.APPROVED and on_shelf

    @staticmethod
    def shopper_face(status: str, *, name: str, images: Sequence[str], approved_name: str,
                     approved_image: str) -> tuple[str, str]:
        """The name and first image a shopper may see of a product, on sale or not (a cart line keeps it).

        An APPROVED product's content is what was approved (an edit sends it back to audit); any other shows the
        content of its last approval, kept apart, or a neutral placeholder if it never had one: an edit's
        unapproved name and images never reach shoppers.
        """
        if status == Status.APPROVED:
            return name, images[0] if images else ""
        if approved_name:
            return approved_name, approved_image
        return UNAPPROVED_NAME, ""

    def edit(self, draft: ProductDraft, now: datetime, *, version: int, reserved: Mapping[int, int],
             category_exists: bool = True, brand_exists: bool = True) -> None:
        """Replace the content read at `version`; an approved product goes back to audit (off shelf), a rejected
        one to draft.

        PRODUCT_CHANGED when another edit came first (the form is stale: reload it, before fixing its fields);
        PRODUCT_IN_AUDIT while waiting for audit; PRODUCT_INVALID as for a new product (Product.create), values
        kept as stored passing rules made since they were saved (ProductDraft.validate). SKU_HAS_STOCK when the
        draft would retire a SKU (leave out or rename its spec combination) that still holds units, in stock
        or `reserved` (units of RESERVED reservations by SKU id): a retired SKU is on no admin page, so its
        units would vanish from sight; write its stock off to 0 first (and let its orders settle).
        """
        if version != self.version:
            raise Conflict("PRODUCT_CHANGED", "the product was changed since it was read; reload it and edit again",
                           details={"version": self.version})
        if self.status == Status.PENDING_AUDIT:
            raise Conflict("PRODUCT_IN_AUDIT", "the product is being audited; wait for the decision")
        draft.validate(self, category_exists=category_exists, brand_exists=brand_exists)
        stocked = [sku for sku in self.retired_by(draft) if sku.stock or reserved.get(sku.id or 0)]
        if stocked:
            raise Conflict("SKU_HAS_STOCK", "SKUs that still hold units cannot be retired; adjust their stock to 0 "
                           "first", details={"skus": [{"id": sku.id, "spec": sku.spec, "stock": sku.stock,
                                                       "reserved": reserved.get(sku.id or 0, 0)}
                                                      for sku in stocked]})
        self.apply(draft, now)
        self.version += 1
        if self.status == Status.APPROVED:
            self.status, self.on_shelf = Status.PENDING_AUDIT, False
        elif self.status == Status.REJECTED:
            self.status = Status.DRAFT

    def retired_by(self, draft: ProductDraft) -> list[Sku]:
        """The active SKUs an edit with `draft` would retire: their spec combination is not in it."""
        wanted = {spec_key(item.spec) for item in draft.skus}
        return [sku for sku in self.active_skus if sku.spec_key not in wanted]

    def apply(self, draft: ProductDraft, now: datetime) -> None:
        """Take the content of a draft validated for this product (create and edit validate it first)."""
        self.name, self.subtitle, self.description = draft.name.strip(), draft.subtitle, draft.description
        self.category_id, self.brand_id = draft.category_id, draft.brand_id
        self.images = list(draft.images)
        self.params = [{"name": name, "value": value} for name, value in draft.params]
        self.specs = [{"name": name, "values": list(values)} for name, values in draft.specs]
        self.after_sales_policy = draft.after_sales_policy
        self.max_per_shopper = draft.max_per_shopper
        existing = {sku.spec_key: sku for sku in self.skus}
        wanted = set()
        for item in draft.skus:
            key = spec_key(item.spec)
            wanted.add(key)
            sku = existing.get(key)
            if sku is None:
                self.skus.append(Sku(spec=dict(item.spec), spec_key=key, price_fen=item.price_fen,
                                     market_price_fen=item.market_price_fen, stock=item.stock,
                                     weight_g=item.weight_g))
            else:  # stock of an existing SKU changes only through stock adjustments (no lost updates)
                sku.price_fen, sku.market_price_fen, sku.weight_g = item.price_fen, item.market_price_fen, item.weight_g
                sku.active = True
        for sku in self.skus:
            if sku.spec_key not in wanted:
                sku.active = False
        cheapest = min((sku for sku in self.skus if sku.active), key=lambda sku: sku.price_fen)
        self.price_fen, self.market_price_fen = cheapest.price_fen, cheapest.market_price_fen
        self.updated_at = now

    def submit(self, now: datetime) -> None:
        if self.status not in (Status.DRAFT, Status.REJECTED):
            raise Conflict("PRODUCT_STATE", f"a {self.status} product cannot be submitted for audit")
        self.status, self.reject_reason, self.updated_at = Status.PENDING_AUDIT, "", now

    def audit(self, *, approve: bool, reason: str, now: datetime, version: int = 0) -> None:
        """Decide on the content read at `version` (0: unchecked); PRODUCT_CHANGED when it was edited since."""
        if version and version != self.version:
            raise Conflict("PRODUCT_CHANGED", "the product was changed since it was read; reload it and audit again",
                           details={"version": self.version})
        if self.status != Status.PENDING_AUDIT:
            raise Conflict("PRODUCT_STATE", f"a {self.status} product is not waiting for audit")
        reason = reason.replace("\x00", "")[:500]
        if not approve and not reason.strip():
            raise InvalidInput("REASON_REQUIRED", "a rejection needs a reason", details={"reason": "required"})
        self.status = Status.APPROVED if approve else Status.REJECTED
        self.reject_reason = "" if approve else reason.strip()
        if approve:
            self.approved_name, self.approved_image = self.name, self.images[0] if self.images else ""
        self.updated_at = now

    def shelve(self, on_shelf: bool, now: datetime) -> None:
        if on_shelf and self.status != Status.APPROVED:
            raise Conflict("PRODUCT_NOT_APPROVED", "only an approved product can go on the shelf")
        self.on_shelf, self.updated_at = on_shelf, now

    def sku(self, sku_id: int) -> Sku:
        found = next((sku for sku in self.skus if sku.id == sku_id), None)
        if found is None:
            raise NotFound("SKU_NOT_FOUND", "no such SKU of this product")
        return found

    def snapshot(self) -> dict[str, Any]:
        """What the audit log records before and after a change."""
        return {"name": self.name, "subtitle": self.subtitle, "category_id": self.category_id,
                "brand_id": self.brand_id, "status": str(self.status), "on_shelf": self.on_shelf,
                "reject_reason": self.reject_reason, "images": list(self.images), "params": list(self.params),
                "specs": list(self.specs), "after_sales_policy": self.after_sales_policy,
                "max_per_shopper": self.max_per_shopper,
                "description_length": len(self.description),
                # the text itself is up to 20,000 characters: its digest tells an edit of it apart, within the length
                "description_sha256": hashlib.sha256(self.description.encode()).hexdigest(),
                "skus": [{"id": sku.id, "spec": sku.spec, "price_fen": sku.price_fen,
                          "market_price_fen": sku.market_price_fen, "weight_g": sku.weight_g}
                         for sku in self.active_skus]}


@dataclass(eq=False)
class AuditEntry:
    product_id: int
    actor_id: int
    action: str
    at: datetime
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    id: int | None = None


@dataclass(eq=False)
class SettingsAuditEntry:
    """A change of a catalogue setting: a category, a brand (entity_key: its id) or a delivery row (the province)."""

    entity: str
    entity_key: str
    actor_id: int
    action: str
    at: datetime
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    id: int | None = None


def _image_or_none(url: str) -> bool:
    """"" (none), or a catalogue image's URL as a product's images are (formats.PRODUCT_IMAGE_URL)."""
    return not url or (len(url) <= URL_MAX and formats.PRODUCT_IMAGE_URL_PATTERN.fullmatch(url) is not None)


def check_category(category: Category, everything: Iterable[Category], stored: Category | None = None) -> None:
    """Field errors of a category about to be saved: name, icon, and a parent that exists and is not below it.

    An icon kept as `stored` (the category before this change) passes: saved before icons had to be our media
    or https, it must not block a rename."""
    problems: dict[str, object] = {}
    if not category.name.strip() or len(category.name) > CATEGORY_NAME_MAX:
        problems["name"] = f"1-{CATEGORY_NAME_MAX} characters"
    elif HIDDEN_CHARACTER.search(category.name):
        problems["name"] = "must not contain control, bidirectional or zero-width characters"
    if not _image_or_none(category.icon) and (stored is None or category.icon != stored.icon):
        problems["icon"] = f"at most {URL_MAX} characters: a /media/... path or an https:// URL"
    if category.parent_id is not None:
        known = list(everything)
        if all(other.id != category.parent_id for other in known):
            problems["parent_id"] = "no such category"
        elif category.id is not None and category.parent_id in descendants(known, category.id):
            problems["parent_id"] = "a category cannot sit below itself"
    if problems:
        raise InvalidInput("CATEGORY_INVALID", "the category is invalid", details=problems)


class BrandExists(Conflict):
    """Brand names are unique: the shop's brand filter and search name one brand by its name."""

    def __init__(self) -> None:
        super().__init__("BRAND_EXISTS", "another brand has this name", details={"name": "taken"})


def check_brand(brand: Brand, stored: Brand | None = None) -> None:
    """Field errors of a brand about to be saved; a logo kept as `stored` passes (as a category's icon)."""
    problems: dict[str, object] = {}
    if not brand.name.strip() or len(brand.name) > BRAND_NAME_MAX:
        problems["name"] = f"1-{BRAND_NAME_MAX} characters"
    elif HIDDEN_CHARACTER.search(brand.name):
        problems["name"] = "must not contain control, bidirectional or zero-width characters"
    if not _image_or_none(brand.logo) and (stored is None or brand.logo != stored.logo):
        problems["logo"] = f"at most {URL_MAX} characters: a /media/... path or an https:// URL"
    if problems:
        raise InvalidInput("BRAND_INVALID", "the brand is invalid", details=problems)


@dataclass(eq=False)
class Reservation:
    """Units of one SKU held for one order until paid (confirmed), cancelled (released) or expired."""

    order_no: str
    sku_id: int
    quantity: int
    created_at: datetime
    expires_at: datetime
    status: str = ReservationStatus.RESERVED
    returned: int = 0       # units returns took back (0009); not CONFIRMED yet: restocked when it sells
    id: int | None = None


@dataclass(frozen=True)
class StockMove:
    """A SKU's stock before and after one conditional update."""

    product_id: int
    before: int
    after: int

    @property
    def status_changed(self) -> bool:
        """Whether shoppers see the move (in_stock / low / sold_out), so cached pages must drop the product."""
        return stock_status(self.before) != stock_status(self.after)


class MovementKind(enum.StrEnum):
    """Why a SKU's stock moved; each kind moves units between the buckets available, reserved and sold."""

    OPENING = "opening"            # what an existing SKU held when the ledger began (migration 0006)
    INITIAL = "initial"            # a new SKU's stock
    ADJUST = "adjust"              # staff restock (+) or write-off (-)
    RESERVE = "reserve"            # available -> reserved (an order is placed)
    CONFIRM = "confirm"            # reserved -> sold (the order is paid)
    RELEASE = "release"            # reserved -> available (the order is cancelled)
    EXPIRE = "expire"              # reserved -> available (the sweep, past the reservation's expiry)
    LATE_SALE = "late_sale"        # available -> sold (an order paid after the sweep expired its reservation)
    CANCEL_PAID = "cancel_paid"    # sold -> available (a paid order cancelled before it shipped)
    RETURN = "return"              # sold -> available (after-sales goods received back)


# (available, reserved, sold) moved per unit. Only the supply kinds change the total a SKU holds.
MOVEMENT_DELTAS: dict[MovementKind, tuple[int, int, int]] = {
    MovementKind.OPENING: (1, 0, 0), MovementKind.INITIAL: (1, 0, 0), MovementKind.ADJUST: (1, 0, 0),
    MovementKind.RESERVE: (-1, 1, 0), MovementKind.CONFIRM: (0, -1, 1),
    MovementKind.RELEASE: (1, -1, 0), MovementKind.EXPIRE: (1, -1, 0), MovementKind.LATE_SALE: (-1, 0, 1),
    MovementKind.CANCEL_PAID: (1, 0, -1), MovementKind.RETURN: (1, 0, -1),
}
SUPPLY_KINDS = (MovementKind.OPENING, MovementKind.INITIAL, MovementKind.ADJUST)


@dataclass(eq=False)
class StockMovement:
    """One change of one SKU's stock, in the stock ledger (append-only, written in the change's transaction).

    The deltas per bucket: `available` is the SKU's stock column, `reserved` the units its RESERVED
    reservations hold, `sold` its sales column. `reference` names what caused it (an order number, an
    after-sales case); `actor_id` the staff member of an initial stock or adjustment (0: a service).
    """

    sku_id: int
    kind: str
    at: datetime
    available: int = 0
    reserved: int = 0
    sold: int = 0
    reference: str = ""
    actor_id: int = 0
    reason: str = ""
    product_id: int = 0
    id: int | None = None

    @classmethod
    def of(cls, kind: MovementKind, sku_id: int, quantity: int, at: datetime, *, reference: str = "",
           actor_id: int = 0, reason: str = "") -> StockMovement:
        """`quantity` units moved the way `kind` moves them (negative for a write-off)."""
        available, reserved, sold = MOVEMENT_DELTAS[kind]
        return cls(sku_id=sku_id, kind=str(kind), at=at, available=available * quantity,
                   reserved=reserved * quantity, sold=sold * quantity, reference=reference[:64],
                   actor_id=actor_id, reason=reason.replace("\x00", "")[:200])


@dataclass(frozen=True)
class StockBalance:
    """A SKU's counts beside what its stock ledger sums to (`make audit` reports the unbalanced ones)."""

    sku_id: int
    available: int                 # the stock column
    reserved: int                  # units of its RESERVED reservations
    sold: int                      # the sales column
    ledger_available: int
    ledger_reserved: int
    ledger_sold: int
    supplied: int                  # initial stock + adjustments, from the ledger

    @property
    def balanced(self) -> bool:
        """Each bucket equals its ledger sum, and available + reserved + sold == initial stock + adjustments."""
        return ((self.available, self.reserved, self.sold) == (self.ledger_available, self.ledger_reserved,
                                                               self.ledger_sold)
                and self.available + self.reserved + self.sold == self.supplied)

    def describe(self) -> str:
        held = self.available + self.reserved + self.sold
        return (f"sku {self.sku_id}: available {self.available} + reserved {self.reserved} + sold {self.sold} = {held}, "
                f"initial + adjustments {self.supplied}; the ledger says available {self.ledger_available}, "
                f"reserved {self.ledger_reserved}, sold {self.ledger_sold}")


@dataclass(frozen=True)
class StockLine:
    sku_id: int
    quantity: int


def merge_lines(order_no: str, lines: Iterable[StockLine]) -> list[StockLine]:
    """One line per SKU (quantities added), in SKU order so concurrent orders lock rows in one order."""
    if not order_no or len(order_no) > 64:
        raise InvalidInput("ORDER_NO_INVALID", "order_no must be 1-64 characters", details={"order_no": "invalid"})
    merged: dict[int, int] = {}
    for line in lines:
        if line.sku_id <= 0 or line.quantity <= 0:
            raise InvalidInput("STOCK_LINE_INVALID", "each line needs a SKU id and a positive quantity",
                               details={"lines": "invalid"})
        merged[line.sku_id] = merged.get(line.sku_id, 0) + line.quantity
    if not merged:
        raise InvalidInput("STOCK_LINE_INVALID", "at least one line", details={"lines": "empty"})
    return [StockLine(sku_id, quantity) for sku_id, quantity in sorted(merged.items())]


@dataclass(frozen=True)
class ProductFilter:
    """A catalogue query; `terms` are the segmented keywords (empty: no keyword search)."""

    category_ids: frozenset[int] | None = None
    brand_id: int | None = None
    price_min_fen: int | None = None
    price_max_fen: int | None = None
    terms: tuple[str, ...] = ()
    sort: Sort = Sort.NEWEST
    status: str | None = None
    visible_only: bool = True
    ids: frozenset[int] | None = None  # only these products
    offset: int = 0
    limit: int = 20


# Reviews (P5, U9)

MAX_REVIEW_IMAGES = formats.MAX_REVIEW_IMAGES
REVIEW_CONTENT_MAX = formats.REVIEW_CONTENT_MAX
RATINGS = (1, 2, 3, 4, 5)
ANONYMOUS_BUYER = "用户***"
REVIEW_HIDE_REASON_MAX = 200


@dataclass(eq=False)
class ReviewableLine:
    """An order line its buyer may review: recorded from `order-completed` (the order was received)."""

    order_no: str
    line_id: int
    user_id: int
    product_id: int
    sku_id: int
    completed_at: datetime
    id: int | None = None


@dataclass(frozen=True)
class ReviewDraft:
    """What a buyer sends: 1-5 stars, up to 500 characters, up to 9 of our own uploaded images."""

    rating: int
    content: str = ""
    images: tuple[str, ...] = ()

    def validate(self) -> ReviewDraft:
        problems: dict[str, object] = {}
        if self.rating not in RATINGS:
            problems["rating"] = "1 to 5"
        if len(self.content) > REVIEW_CONTENT_MAX or "\x00" in self.content:
            problems["content"] = f"at most {REVIEW_CONTENT_MAX} characters, no NUL"
        if len(self.images) > MAX_REVIEW_IMAGES:
            problems["images"] = f"at most {MAX_REVIEW_IMAGES}"
        elif any(not formats.UPLOAD_URL_PATTERN.fullmatch(url) for url in self.images):
            problems["images"] = "only images uploaded with POST /uploads (their /media/uploads/ URL)"
        if problems:
            raise InvalidInput("REVIEW_INVALID", "the review is invalid", details=problems)
        return self


def mask_buyer(nickname: str) -> str:
    """How a review names its buyer: the nickname's first character and ***, never the whole name."""
    nickname = nickname.strip()
    return nickname[0] + "***" if nickname else ANONYMOUS_BUYER


@dataclass(eq=False)
class Review:
    """One buyer's review of one order line, once; the SKU's spec and the masked buyer are kept as they were."""

    product_id: int
    sku_id: int
    user_id: int
    order_no: str
    line_id: int
    rating: int
    content: str
    images: list[str]
    spec: dict[str, str]
    buyer: str
    created_at: datetime
    hidden: bool = False       # by staff (moderation): off the product's page and out of its rating
    hidden_reason: str = ""
    hidden_by: int | None = None      # who hid it and when, while hidden (not recorded by hides before migration 0016)
    hidden_at: datetime | None = None
    id: int | None = None

    def hide(self, reason: str, *, by: int, at: datetime) -> bool:
        """Take the review off the product's page (spam, abuse, someone's personal data); whether this changed it."""
        reason = _moderation_reason(reason, "hiding")
        if self.hidden:
            return False
        self.hidden, self.hidden_reason, self.hidden_by, self.hidden_at = True, reason, by, at
        return True

    def unhide(self, reason: str) -> str:
        """Put a hidden review back on the product's page (hidden by mistake, or on second thought); the reason,
        cleaned. Conflict REVIEW_NOT_HIDDEN for a visible review: unhiding it would count its stars twice."""
        reason = _moderation_reason(reason, "unhiding")
        if not self.hidden:
            raise Conflict("REVIEW_NOT_HIDDEN", "this review is not hidden")
        self.hidden, self.hidden_reason, self.hidden_by, self.hidden_at = False, "", None, None
        return reason


def _moderation_reason(reason: str, doing: str) -> str:
    reason = reason.replace("\x00", "").strip()[:REVIEW_HIDE_REASON_MAX]
    if not reason:
        raise InvalidInput("REASON_REQUIRED", f"{doing} a review needs a reason", details={"reason": "required"})
    return reason


@dataclass(frozen=True)
class RatingSummary:
    """A product's ratings: how many reviews gave 1..5 stars (`stars[0]` is 1 star)."""

    stars: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)

    @property
    def count(self) -> int:
        return sum(self.stars)

    @property
    def average_tenths(self) -> int:
        """The mean rating in tenths of a star, rounded half up: 4.35 -> 44; 0 without reviews."""
        if not self.count:
            return 0
        total = sum(rating * n for rating, n in zip(RATINGS, self.stars, strict=True))
        return (20 * total + self.count) // (2 * self.count)
