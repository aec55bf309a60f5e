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
    __slots__ = ("phone", "password")
    PHONE_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    phone: str
    password: str
    def __init__(self, phone: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class User(_message.Message):
    __slots__ = ("id", "phone_masked", "nickname", "avatar_url", "roles")
    ID_FIELD_NUMBER: _ClassVar[int]
    PHONE_MASKED_FIELD_NUMBER: _ClassVar[int]
    NICKNAME_FIELD_NUMBER: _ClassVar[int]
    AVATAR_URL_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    id: int
    phone_masked: str
    nickname: str
    avatar_url: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[int] = ..., phone_masked: _Optional[str] = ..., nickname: _Optional[str] = ..., avatar_url: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ...) -> None: ...

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
    __slots__ = ("code",)
    CODE_FIELD_NUMBER: _ClassVar[int]
    code: str
    def __init__(self, code: _Optional[str] = ...) -> None: ...

class UnbindWechatRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WechatBinding(_message.Message):
    __slots__ = ("wechat_bound",)
    WECHAT_BOUND_FIELD_NUMBER: _ClassVar[int]
    wechat_bound: bool
    def __init__(self, wechat_bound: _Optional[bool] = ...) -> None: ...
