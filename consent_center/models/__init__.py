"""All models, re-exported so `from consent_center.models import Member` works."""

from .audit import AuditEvent
from .auth import OneTimeCode
from .consent import ConsentEvent, ConsentState
from .deletion import DeletionRequest
from .guardian import GuardianLink
from .member import Member
from .notification import FanOut, Notification, NotificationContent
from .policy import PolicyVersion

__all__ = [
    "AuditEvent",
    "ConsentEvent",
    "ConsentState",
    "DeletionRequest",
    "Member",
    "FanOut",
    "GuardianLink",
    "Notification",
    "NotificationContent",
    "OneTimeCode",
    "PolicyVersion",
]
