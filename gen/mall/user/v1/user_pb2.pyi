import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SendSmsCodeRequest(_message.Message):
    __slots__ = ("phone", "purpose")
    PHONE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    phone: str
    purpose: str
    def __init__(self, phone: _Optional[str] = ..., purpose: _Optional[str] = ...) -> None: ...

class SendSmsCodeResponse(_message.Message):
    __slots__ = ("expires_in", "resend_after", "dev_code")
    EXPIRES_IN_FIELD_NUMBER: _ClassVar[int]
    RESEND_AFTER_FIELD_NUMBER: _ClassVar[int]
    DEV_CODE_FIELD_NUMBER: _ClassVar[int]
    expires_in: int
    resend_after: int
    dev_code: str
    def __init__(self, expires_in: _Optional[int] = ..., resend_after: _Optional[int] = ..., dev_code: _Optional[str] = ...) -> None: ...

class LoginWithSmsRequest(_message.Message):
    __slots__ = ("phone", "code")
    PHONE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    phone: str
    code: str
    def __init__(self, phone: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class LoginWithPasswordRequest(_message.Message):
    __slots__ = ("phone", "password", "new_password", "sms_code")
    PHONE_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    NEW_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    SMS_CODE_FIELD_NUMBER: _ClassVar[int]
    phone: str
    password: str
    new_password: str
    sms_code: str
    def __init__(self, phone: _Optional[str] = ..., password: _Optional[str] = ..., new_password: _Optional[str] = ..., sms_code: _Optional[str] = ...) -> None: ...

class User(_message.Message):
    __slots__ = ("id", "phone_masked", "nickname", "avatar_url", "roles", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    PHONE_MASKED_FIELD_NUMBER: _ClassVar[int]
    NICKNAME_FIELD_NUMBER: _ClassVar[int]
    AVATAR_URL_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    phone_masked: str
    nickname: str
    avatar_url: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., phone_masked: _Optional[str] = ..., nickname: _Optional[str] = ..., avatar_url: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LoginResponse(_message.Message):
    __slots__ = ("access_token", "refresh_token", "expires_in", "user", "is_new_user")
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REFRESH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    IS_NEW_USER_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    refresh_token: str
    expires_in: int
    user: User
    is_new_user: bool
    def __init__(self, access_token: _Optional[str] = ..., refresh_token: _Optional[str] = ..., expires_in: _Optional[int] = ..., user: _Optional[_Union[User, _Mapping]] = ..., is_new_user: _Optional[bool] = ...) -> None: ...

class LoginWithWechatRequest(_message.Message):
    __slots__ = ("code",)
    CODE_FIELD_NUMBER: _ClassVar[int]
    code: str
    def __init__(self, code: _Optional[str] = ...) -> None: ...

class BindWechatRequest(_message.Message):
    __slots__ = ("code", "sms_code")
    CODE_FIELD_NUMBER: _ClassVar[int]
    SMS_CODE_FIELD_NUMBER: _ClassVar[int]
    code: str
    sms_code: str
    def __init__(self, code: _Optional[str] = ..., sms_code: _Optional[str] = ...) -> None: ...

class UnbindWechatRequest(_message.Message):
    __slots__ = ("sms_code",)
    SMS_CODE_FIELD_NUMBER: _ClassVar[int]
    sms_code: str
    def __init__(self, sms_code: _Optional[str] = ...) -> None: ...

class BindPhoneRequest(_message.Message):
    __slots__ = ("phone", "code", "wechat_code")
    PHONE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    WECHAT_CODE_FIELD_NUMBER: _ClassVar[int]
    phone: str
    code: str
    wechat_code: str
    def __init__(self, phone: _Optional[str] = ..., code: _Optional[str] = ..., wechat_code: _Optional[str] = ...) -> None: ...

class WechatBinding(_message.Message):
    __slots__ = ("wechat_bound",)
    WECHAT_BOUND_FIELD_NUMBER: _ClassVar[int]
    wechat_bound: bool
    def __init__(self, wechat_bound: _Optional[bool] = ...) -> None: ...

class RefreshSessionRequest(_message.Message):
    __slots__ = ("refresh_token",)
    REFRESH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    refresh_token: str
    def __init__(self, refresh_token: _Optional[str] = ...) -> None: ...

class LogoutRequest(_message.Message):
    __slots__ = ("refresh_token",)
    REFRESH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    refresh_token: str
    def __init__(self, refresh_token: _Optional[str] = ...) -> None: ...

class LogoutAllRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LogoutResponse(_message.Message):
    __slots__ = ("sessions_ended",)
    SESSIONS_ENDED_FIELD_NUMBER: _ClassVar[int]
    sessions_ended: int
    def __init__(self, sessions_ended: _Optional[int] = ...) -> None: ...

class ChangePasswordRequest(_message.Message):
    __slots__ = ("current_password", "sms_code", "new_password")
    CURRENT_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    SMS_CODE_FIELD_NUMBER: _ClassVar[int]
    NEW_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    current_password: str
    sms_code: str
    new_password: str
    def __init__(self, current_password: _Optional[str] = ..., sms_code: _Optional[str] = ..., new_password: _Optional[str] = ...) -> None: ...

class ResetPasswordRequest(_message.Message):
    __slots__ = ("phone", "code", "new_password")
    PHONE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    NEW_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    phone: str
    code: str
    new_password: str
    def __init__(self, phone: _Optional[str] = ..., code: _Optional[str] = ..., new_password: _Optional[str] = ...) -> None: ...

class GetProfileRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Profile(_message.Message):
    __slots__ = ("id", "phone_masked", "nickname", "avatar_url", "gender", "birthday", "region", "identity_verified", "wechat_bound")
    ID_FIELD_NUMBER: _ClassVar[int]
    PHONE_MASKED_FIELD_NUMBER: _ClassVar[int]
    NICKNAME_FIELD_NUMBER: _ClassVar[int]
    AVATAR_URL_FIELD_NUMBER: _ClassVar[int]
    GENDER_FIELD_NUMBER: _ClassVar[int]
    BIRTHDAY_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_VERIFIED_FIELD_NUMBER: _ClassVar[int]
    WECHAT_BOUND_FIELD_NUMBER: _ClassVar[int]
    id: int
    phone_masked: str
    nickname: str
    avatar_url: str
    gender: str
    birthday: str
    region: str
    identity_verified: bool
    wechat_bound: bool
    def __init__(self, id: _Optional[int] = ..., phone_masked: _Optional[str] = ..., nickname: _Optional[str] = ..., avatar_url: _Optional[str] = ..., gender: _Optional[str] = ..., birthday: _Optional[str] = ..., region: _Optional[str] = ..., identity_verified: _Optional[bool] = ..., wechat_bound: _Optional[bool] = ...) -> None: ...

class UpdateProfileRequest(_message.Message):
    __slots__ = ("nickname", "avatar_url", "gender", "birthday", "region")
    NICKNAME_FIELD_NUMBER: _ClassVar[int]
    AVATAR_URL_FIELD_NUMBER: _ClassVar[int]
    GENDER_FIELD_NUMBER: _ClassVar[int]
    BIRTHDAY_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    nickname: str
    avatar_url: str
    gender: str
    birthday: str
    region: str
    def __init__(self, nickname: _Optional[str] = ..., avatar_url: _Optional[str] = ..., gender: _Optional[str] = ..., birthday: _Optional[str] = ..., region: _Optional[str] = ...) -> None: ...

class Address(_message.Message):
    __slots__ = ("id", "user_id", "receiver_name", "receiver_phone", "province", "city", "district", "detail", "is_default")
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_NAME_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_PHONE_FIELD_NUMBER: _ClassVar[int]
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    DISTRICT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    id: int
    user_id: int
    receiver_name: str
    receiver_phone: str
    province: str
    city: str
    district: str
    detail: str
    is_default: bool
    def __init__(self, id: _Optional[int] = ..., user_id: _Optional[int] = ..., receiver_name: _Optional[str] = ..., receiver_phone: _Optional[str] = ..., province: _Optional[str] = ..., city: _Optional[str] = ..., district: _Optional[str] = ..., detail: _Optional[str] = ..., is_default: _Optional[bool] = ...) -> None: ...

class AddressFields(_message.Message):
    __slots__ = ("receiver_name", "receiver_phone", "province", "city", "district", "detail")
    RECEIVER_NAME_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_PHONE_FIELD_NUMBER: _ClassVar[int]
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    DISTRICT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    receiver_name: str
    receiver_phone: str
    province: str
    city: str
    district: str
    detail: str
    def __init__(self, receiver_name: _Optional[str] = ..., receiver_phone: _Optional[str] = ..., province: _Optional[str] = ..., city: _Optional[str] = ..., district: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class ListAddressesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAddressesResponse(_message.Message):
    __slots__ = ("addresses",)
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    addresses: _containers.RepeatedCompositeFieldContainer[Address]
    def __init__(self, addresses: _Optional[_Iterable[_Union[Address, _Mapping]]] = ...) -> None: ...

class AddAddressRequest(_message.Message):
    __slots__ = ("fields", "is_default")
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    fields: AddressFields
    is_default: bool
    def __init__(self, fields: _Optional[_Union[AddressFields, _Mapping]] = ..., is_default: _Optional[bool] = ...) -> None: ...

class ChangeAddressRequest(_message.Message):
    __slots__ = ("address_id", "fields", "is_default")
    ADDRESS_ID_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    address_id: int
    fields: AddressFields
    is_default: bool
    def __init__(self, address_id: _Optional[int] = ..., fields: _Optional[_Union[AddressFields, _Mapping]] = ..., is_default: _Optional[bool] = ...) -> None: ...

class DeleteAddressRequest(_message.Message):
    __slots__ = ("address_id",)
    ADDRESS_ID_FIELD_NUMBER: _ClassVar[int]
    address_id: int
    def __init__(self, address_id: _Optional[int] = ...) -> None: ...

class DeleteAddressResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VerifyIdentityRequest(_message.Message):
    __slots__ = ("real_name", "id_number")
    REAL_NAME_FIELD_NUMBER: _ClassVar[int]
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    real_name: str
    id_number: str
    def __init__(self, real_name: _Optional[str] = ..., id_number: _Optional[str] = ...) -> None: ...

class GetVerificationRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    def __init__(self, user_id: _Optional[int] = ...) -> None: ...

class Verification(_message.Message):
    __slots__ = ("verified", "real_name_masked", "id_number_masked", "verified_at")
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    REAL_NAME_MASKED_FIELD_NUMBER: _ClassVar[int]
    ID_NUMBER_MASKED_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    verified: bool
    real_name_masked: str
    id_number_masked: str
    verified_at: _timestamp_pb2.Timestamp
    def __init__(self, verified: _Optional[bool] = ..., real_name_masked: _Optional[str] = ..., id_number_masked: _Optional[str] = ..., verified_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetBuyerRequest(_message.Message):
    __slots__ = ("user_id", "address_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    address_id: int
    def __init__(self, user_id: _Optional[int] = ..., address_id: _Optional[int] = ...) -> None: ...

class Buyer(_message.Message):
    __slots__ = ("verified", "address")
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    verified: bool
    address: Address
    def __init__(self, verified: _Optional[bool] = ..., address: _Optional[_Union[Address, _Mapping]] = ...) -> None: ...

class SetUserRolesRequest(_message.Message):
    __slots__ = ("user_id", "roles")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    roles: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_id: _Optional[int] = ..., roles: _Optional[_Iterable[str]] = ...) -> None: ...

class SetUserRolesResponse(_message.Message):
    __slots__ = ("user", "password_cleared", "sessions_ended")
    USER_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_CLEARED_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_ENDED_FIELD_NUMBER: _ClassVar[int]
    user: User
    password_cleared: bool
    sessions_ended: int
    def __init__(self, user: _Optional[_Union[User, _Mapping]] = ..., password_cleared: _Optional[bool] = ..., sessions_ended: _Optional[int] = ...) -> None: ...

class SetStaffPasswordRequest(_message.Message):
    __slots__ = ("user_id", "new_password")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    new_password: str
    def __init__(self, user_id: _Optional[int] = ..., new_password: _Optional[str] = ...) -> None: ...

class SearchUsersRequest(_message.Message):
    __slots__ = ("phone", "user_id", "nickname_prefix", "offset", "limit")
    PHONE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    NICKNAME_PREFIX_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    phone: str
    user_id: int
    nickname_prefix: str
    offset: int
    limit: int
    def __init__(self, phone: _Optional[str] = ..., user_id: _Optional[int] = ..., nickname_prefix: _Optional[str] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class SearchUsersResponse(_message.Message):
    __slots__ = ("users", "total")
    USERS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[User]
    total: int
    def __init__(self, users: _Optional[_Iterable[_Union[User, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class GetWechatPayerRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    def __init__(self, user_id: _Optional[int] = ...) -> None: ...

class WechatPayer(_message.Message):
    __slots__ = ("appid", "openid")
    APPID_FIELD_NUMBER: _ClassVar[int]
    OPENID_FIELD_NUMBER: _ClassVar[int]
    appid: str
    openid: str
    def __init__(self, appid: _Optional[str] = ..., openid: _Optional[str] = ...) -> None: ...

class HasPhoneRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    def __init__(self, user_id: _Optional[int] = ...) -> None: ...

class HasPhoneResponse(_message.Message):
    __slots__ = ("has_phone",)
    HAS_PHONE_FIELD_NUMBER: _ClassVar[int]
    has_phone: bool
    def __init__(self, has_phone: _Optional[bool] = ...) -> None: ...

class GetPayeeNameRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    def __init__(self, user_id: _Optional[int] = ...) -> None: ...

class PayeeName(_message.Message):
    __slots__ = ("real_name",)
    REAL_NAME_FIELD_NUMBER: _ClassVar[int]
    real_name: str
    def __init__(self, real_name: _Optional[str] = ...) -> None: ...

class ListHistoryRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ViewedProduct(_message.Message):
    __slots__ = ("product_id", "viewed_at")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    VIEWED_AT_FIELD_NUMBER: _ClassVar[int]
    product_id: int
    viewed_at: _timestamp_pb2.Timestamp
    def __init__(self, product_id: _Optional[int] = ..., viewed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListHistoryResponse(_message.Message):
    __slots__ = ("products",)
    PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    products: _containers.RepeatedCompositeFieldContainer[ViewedProduct]
    def __init__(self, products: _Optional[_Iterable[_Union[ViewedProduct, _Mapping]]] = ...) -> None: ...

class ClearHistoryRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ClearHistoryResponse(_message.Message):
    __slots__ = ("cleared",)
    CLEARED_FIELD_NUMBER: _ClassVar[int]
    cleared: int
    def __init__(self, cleared: _Optional[int] = ...) -> None: ...
