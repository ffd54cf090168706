"""The fixed statuses of members, guardians, consents, messages and deletion requests, and
the one label each shows under (every page, form and message reads these)."""

from __future__ import annotations

from enum import StrEnum

from .text import _l


class Role(StrEnum):
    MEMBER = "member"
    STAFF = "staff"
    ADMIN = "admin"


class MemberStatus(StrEnum):
    # Only an active account is in audiences, usable through the API and sent notices.
    ACTIVE = "active"
    # Registered, but nobody has yet proved the contact with a code: nothing counts yet.
    UNVERIFIED = "unverified"
    AWAITING_GUARDIAN = "awaiting_guardian"
    ERASED = "erased"



ROLE_LABELS = {Role.MEMBER: _l("Member"), Role.STAFF: _l("Staff"), Role.ADMIN: _l("Administrator")}
MEMBER_STATUS_LABELS = {
    MemberStatus.ACTIVE: _l("Active"),
    MemberStatus.UNVERIFIED: _l("Waiting for the contact to be verified"),
    MemberStatus.AWAITING_GUARDIAN: _l("Waiting for a guardian's approval"),
    MemberStatus.ERASED: _l("Erased"),
}


class Gender(StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"


GENDER_LABELS = {
    Gender.FEMALE: _l("Female"),
    Gender.MALE: _l("Male"),
    Gender.OTHER: _l("Another gender"),
}


class Locale(StrEnum):
    EN = "en"
    ZH = "zh_Hans_CN"


LOCALE_LABELS = {Locale.EN: "English", Locale.ZH: "简体中文"}
# The value for the HTML `lang` attribute of each locale.
LOCALE_HTML_LANG = {Locale.EN: "en", Locale.ZH: "zh-Hans"}


class GuardianStatus(StrEnum):
    INVITED = "invited"
    APPROVED = "approved"
    REFUSED = "refused"
    REVOKED = "revoked"
    ENDED = "ended"


GUARDIAN_STATUS_LABELS = {
    GuardianStatus.INVITED: _l("Waiting for the guardian"),
    GuardianStatus.APPROVED: _l("Approved"),
    GuardianStatus.REFUSED: _l("Refused"),
    GuardianStatus.REVOKED: _l("Ended"),
    GuardianStatus.ENDED: _l("Ended: came of age"),
}


class Actor(StrEnum):
    MEMBER = "member"
    GUARDIAN = "guardian"
    STAFF = "staff"
    SYSTEM = "system"


class Method(StrEnum):
    FORM = "form"
    HTMX = "htmx"
    REGISTRATION = "registration"
    GUARDIAN_LINK = "guardian_link"
    API = "api"
    GPC = "gpc"
    POLICY_CHANGE = "policy_change"
    # Turned on while the browser sent Global Privacy Control, after the member confirmed.
    GPC_OVERRIDE = "gpc_override"
    # Switched on by a guardian through the second message's link ("email plus").
    GUARDIAN_CONFIRMATION = "guardian_confirmation"


METHOD_LABELS = {
    Method.FORM: _l("Web form"),
    Method.HTMX: _l("Web page switch"),
    Method.REGISTRATION: _l("Registration form"),
    Method.GUARDIAN_LINK: _l("Guardian approval"),
    Method.API: _l("API"),
    Method.GPC: _l("Global Privacy Control signal"),
    Method.POLICY_CHANGE: _l("Policy change"),
    Method.GPC_OVERRIDE: _l("Web form, overriding the Global Privacy Control signal"),
    Method.GUARDIAN_CONFIRMATION: _l("Guardian's second confirmation"),
}

ACTOR_LABELS = {
    Actor.MEMBER: _l("You"),
    Actor.GUARDIAN: _l("Your guardian"),
    Actor.STAFF: _l("Staff"),
    Actor.SYSTEM: _l("System"),
}


# The same actors as staff read them (members read "You" instead).
STAFF_ACTOR_LABELS = {
    Actor.MEMBER: _l("The member"),
    Actor.GUARDIAN: _l("A guardian"),
    Actor.STAFF: _l("Staff"),
    Actor.SYSTEM: _l("System"),
}


class BirthDateReviewStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"


BIRTH_DATE_REVIEW_LABELS = {
    BirthDateReviewStatus.PENDING: _l("Waiting for review"),
    BirthDateReviewStatus.APPROVED: _l("Approved"),
    BirthDateReviewStatus.REFUSED: _l("Refused"),
}


class StaffAccessReason(StrEnum):
    """Why a staff member opened a member's record: asked before the record is shown,
    audited with the viewing, and shown to the member on "Who looked at my data"."""

    MEMBER_REQUEST = "member_request"
    DELETION_REQUEST = "deletion_request"
    BIRTH_DATE_REVIEW = "birth_date_review"
    SECURITY = "security"
    LEGAL = "legal"


STAFF_ACCESS_REASONS = {
    StaffAccessReason.MEMBER_REQUEST: _l("Answering a request or question from the member"),
    StaffAccessReason.DELETION_REQUEST: _l("Deciding a deletion request"),
    StaffAccessReason.BIRTH_DATE_REVIEW: _l("Reviewing a correction of the date of birth"),
    StaffAccessReason.SECURITY: _l("Investigating a security problem"),
    StaffAccessReason.LEGAL: _l("Meeting a legal obligation"),
}
# The audit actions that mean "staff saw or took a copy of this member's record", each as the
# member reads it on "Who looked at my data".
STAFF_ACCESS_ACTIONS = {
    "staff.member_viewed": _l("Viewed the record"),
    "staff.member_exported": _l("Exported the record"),
}


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    WEBHOOK = "webhook"  # to a downstream system (a subscription), never to a member




# The channels that reach a member, as pages name them.
CHANNEL_LABELS = {Channel.EMAIL: _l("Email"), Channel.SMS: _l("Text message")}


class NotificationStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    DEAD = "dead"


NOTIFICATION_STATUS_LABELS = {
    NotificationStatus.PENDING: _l("Waiting to be sent"),
    NotificationStatus.SENDING: _l("Sending"),
    NotificationStatus.SENT: _l("Sent"),
    NotificationStatus.DELIVERED: _l("Delivered"),
    NotificationStatus.FAILED: _l("Could not be delivered"),
    NotificationStatus.DEAD: _l("Gave up after retries"),
}


NOTIFICATION_KIND_LABELS = {
    "sign_in_code": _l("Sign-in code"),
    "verify_contact": _l("Contact confirmation code"),
    "policy_notice": _l("Privacy policy change notice"),
    "contact_message": _l("Message to customer service"),
    "contact_ack": _l("We received your message"),
    "deletion_received": _l("Deletion request received"),
    "deletion_refused": _l("Deletion request refused"),
    "deletion_completed": _l("Your data is erased"),
    "reauth_code": _l("Confirmation code"),
    "incident_notice": _l("Security incident notice"),
    "guardian_invite": _l("Request for a guardian's approval"),
    "guardian_code": _l("Guardian verification code"),
    "guardian_approved": _l("Guardian approved the account"),
    "guardian_refused": _l("Guardian refused the account"),
    "guardian_change": _l("A guardian changed a choice"),
    "guardian_ended": _l("Guardian oversight ended"),
    "guardian_wait_expired": _l("No guardian answered: account erased"),
    "guardian_reconsent": _l("Please decide again"),
    "guardian_confirm": _l("Guardian's second confirmation"),
    "code_lockout": _l("Too many wrong codes: codes paused"),
    "contact_change_code": _l("Code to confirm a new contact detail"),
    "contact_changed": _l("Your contact details were changed"),
}



class DeletionStatus(StrEnum):
    RECEIVED = "received"
    IN_REVIEW = "in_review"
    COMPLETED = "completed"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"


OPEN_DELETION_STATUSES = (DeletionStatus.RECEIVED, DeletionStatus.IN_REVIEW)
DELETION_STATUS_LABELS = {
    DeletionStatus.RECEIVED: _l("Received"),
    DeletionStatus.IN_REVIEW: _l("In review"),
    DeletionStatus.COMPLETED: _l("Completed: your data is erased"),
    DeletionStatus.REFUSED: _l("Refused"),
    DeletionStatus.WITHDRAWN: _l("Withdrawn"),
}

