"""All models, re-exported so `from consent_center.models import Member` works."""

from .api import ApiToken, ChangeEvent
from .audit import AuditEvent
from .auth import MemberSession, OneTimeCode
from .birth_date_review import BirthDateReview
from .consent import ConsentEvent, ConsentState, ReconsentRequest
from .deletion import DeletionRequest
from .guardian import GuardianLink
from .incident import IncidentNotice
from .inventory import DATA_INVENTORY, HELD_TABLES
from .member import Member
from .notification import FanOut, Notification, NotificationContent, NotificationSubject
from .policy import PolicyVersion
from .webhook import WebhookSubscription

__all__ = [
    "DATA_INVENTORY",
    "HELD_TABLES",
    "ApiToken",
    "ChangeEvent",
    "WebhookSubscription",
    "AuditEvent",
    "BirthDateReview",
    "ConsentEvent",
    "ConsentState",
    "ReconsentRequest",
    "DeletionRequest",
    "Member",
    "MemberSession",
    "FanOut",
    "GuardianLink",
    "IncidentNotice",
    "Notification",
    "NotificationContent",
    "NotificationSubject",
    "OneTimeCode",
    "PolicyVersion",
]
