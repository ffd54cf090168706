"""The domain's fixed vocabulary: purposes, the data inventory, refusal grounds and enums.

Everything a member is told about what we hold and why is generated from this module, and
a test walks every database column to prove nothing stored is missing from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from flask import current_app
from flask_babel import lazy_gettext as _l


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
}


@dataclass(frozen=True)
class Purpose:
    key: str
    title: object
    description: object
    optional: bool
    kantara_category: str


SERVICE = "service"
TREND_ANALYSIS = "trend_analysis"
ADVERTISING = "advertising"

PURPOSES: dict[str, Purpose] = {
    SERVICE: Purpose(
        SERVICE,
        _l("Providing the service"),
        _l(
            "Running your membership: signing you in, answering your requests, sending the "
            "notices the law requires and keeping member statistics needed to provide the "
            "services you apply for. This is necessary, so it cannot be switched off."
        ),
        optional=False,
        kantara_category="Core Function",
    ),
    TREND_ANALYSIS: Purpose(
        TREND_ANALYSIS,
        _l("Trend analysis"),
        _l(
            "Using your information for general trend analysis to improve our service, such "
            "as evaluating service facilities and customer preferences. It looks at members "
            "in aggregate: no decision about you as an individual is made from it. Off unless "
            "you turn it on; the service is the same either way."
        ),
        optional=True,
        kantara_category="Improve Performance",
    ),
    ADVERTISING: Purpose(
        ADVERTISING,
        _l("Advertising planning"),
        _l(
            "Using your information to plan our advertising, for example deciding which "
            "offers to show members like you. Off unless you turn it on; the service is the "
            "same either way."
        ),
        optional=True,
        kantara_category="Marketing",
    ),
}

OPTIONAL_PURPOSES: tuple[str, ...] = tuple(k for k, p in PURPOSES.items() if p.optional)

# Shown beside every optional purpose's switch (GDPR art. 7(3): the member is told before
# consenting that consent can be withdrawn, and that withdrawal does not undo past use).
WITHDRAWAL_NOTE = _l(
    "You can withdraw this consent at any time, as easily as you gave it. Withdrawing stops "
    "this use from then on; it does not affect use already made while it was on."
)


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


class RefusalGround(StrEnum):
    """The five cases in which the policy lets the company refuse a deletion request."""

    NATIONAL_SECURITY = "national_security"
    PUBLIC_INTEREST = "public_interest"
    CRIMINAL_JUSTICE = "criminal_justice"
    ABUSE_OF_RIGHTS = "abuse_of_rights"
    THIRD_PARTY_RIGHTS = "third_party_rights"


REFUSAL_GROUNDS = {
    RefusalGround.NATIONAL_SECURITY: _l(
        "Directly related to national security and national defense security"
    ),
    RefusalGround.PUBLIC_INTEREST: _l(
        "Directly related to public safety, public health, and major public interests"
    ),
    RefusalGround.CRIMINAL_JUSTICE: _l(
        "Directly related to criminal investigation, prosecution, trial and execution of judgments"
    ),
    RefusalGround.ABUSE_OF_RIGHTS: _l(
        "There is sufficient evidence to show subjective malice or abuse of rights"
    ),
    RefusalGround.THIRD_PARTY_RIGHTS: _l(
        "Responding would cause serious damage to the legitimate rights and interests of "
        "other individuals and organizations"
    ),
}


# Told with every refused deletion request (PIPL art. 50: a refused request may be taken to
# the supervisory authority or to court). One text for the status page and the email; the
# text message says it in short (templates/sms/deletion_refused.txt).
REFUSAL_REMEDIES = _l(
    "You may complain about this refusal to the personal information protection authority "
    "(in China, the Cyberspace Administration or another department responsible for personal "
    "information protection), or bring a lawsuit before a people's court."
)

# --- The data inventory ----------------------------------------------------------------

PROVIDED = "provided"
RECORDED = "recorded"
SOURCE_LABELS = {PROVIDED: _l("You gave it"), RECORDED: _l("We recorded it")}


class _Setting:
    """A configuration value named in a member-facing text, read each time the text is shown
    (the text states the limit the retention rules apply, services/retention.py)."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __str__(self) -> str:
        return str(current_app.config[self.key])


# Code rows are deleted this long after they expire (services/retention.py).
CODE_RETENTION_HOURS = 24

_UNTIL_ERASED = _l("While you are a member; removed when your data is erased")
_NOT_SHARED = _l("Not shared")
# Who receives a field besides us: the recipients the export and /me name (PIPL art. 17, 23).
_MAIL_SERVER = _l(
    "The email server that delivers our messages (ours, or a provider acting for us), only to "
    "deliver them to you"
)
_SMS_PROVIDER = _l(
    "Twilio, the text message provider acting for us, only to deliver text messages to you"
)
_MESSAGE_CARRIERS = _l(
    "The email server or, for text messages, Twilio, acting for us only to deliver the message"
)
_OUR_SYSTEMS = _l(
    "Our own systems that check whether a use is allowed (through our consent API and its "
    "change notices); never anyone outside the company"
)
_KEPT_ANONYMISED = _l(
    "Kept as proof of your choices; on erasure it is re-keyed so it no longer identifies you, "
    "and %(years)s years after the erasure it is deleted",
    years=_Setting("LEDGER_RETENTION_YEARS"),
)
_RECORD_KEPT = _l(
    "While you are a member; on erasure only a record without your contact details is kept, "
    "and %(years)s years after the erasure it is deleted",
    years=_Setting("LEDGER_RETENTION_YEARS"),
)
_ERASURE_DATE_KEPT = _l(
    "Kept, with nothing that identifies you, as proof that your data was erased"
)
_CODE_KEPT = _l(
    "Deleted by our daily clean-up once %(hours)s hours have passed since it expired",
    hours=CODE_RETENTION_HOURS,
)
_MESSAGE_CONTENT_KEPT = _l(
    "Deleted %(days)s days after the message was sent (or given up), or sooner when your data "
    "is erased",
    days=_Setting("OUTBOX_RETENTION_DAYS"),
)

_SESSION_KEPT = _l(
    "Deleted when you sign out, on that device or everywhere; otherwise by our daily clean-up "
    "once it has ended"
)


@dataclass(frozen=True)
class InventoryField:
    """One stored field about a member, with what we tell the member about it."""

    table: str
    column: str
    label: object
    purposes: tuple[str, ...]
    source: str
    retention: object
    recipients: object = _NOT_SHARED


@dataclass(frozen=True)
class InventoryGroup:
    """A table holding member data, shown as one section of "What we hold about you"."""

    table: str
    title: object
    description: object
    fields: tuple[InventoryField, ...]


def _group(table: str, title, description, *fields: tuple) -> InventoryGroup:
    return InventoryGroup(
        table, title, description, tuple(InventoryField(table, *f) for f in fields)
    )


DATA_INVENTORY: tuple[InventoryGroup, ...] = (
    _group(
        "member",
        _l("Your profile"),
        _l("What you told us when you registered or later corrected."),
        ("public_id", _l("Member number"), (SERVICE,), RECORDED, _UNTIL_ERASED, _OUR_SYSTEMS),
        ("name", _l("Name"), (SERVICE, TREND_ANALYSIS), PROVIDED, _UNTIL_ERASED),
        ("gender", _l("Gender"), (SERVICE, TREND_ANALYSIS, ADVERTISING), PROVIDED, _UNTIL_ERASED),
        ("email", _l("Email address"), (SERVICE,), PROVIDED, _UNTIL_ERASED, _MAIL_SERVER),
        ("phone", _l("Mobile number"), (SERVICE,), PROVIDED, _UNTIL_ERASED, _SMS_PROVIDER),
        ("birth_date", _l("Date of birth"), (SERVICE, TREND_ANALYSIS), PROVIDED, _UNTIL_ERASED),
        ("locale", _l("Preferred language"), (SERVICE,), PROVIDED, _UNTIL_ERASED),
        ("role", _l("Account type"), (SERVICE,), RECORDED, _UNTIL_ERASED),
        ("status", _l("Account status"), (SERVICE,), RECORDED, _UNTIL_ERASED),
        ("email_verified_at", _l("Email verified on"), (SERVICE,), RECORDED, _UNTIL_ERASED),
        ("phone_verified_at", _l("Mobile number verified on"), (SERVICE,), RECORDED, _UNTIL_ERASED),
        ("created_at", _l("Member since"), (SERVICE,), RECORDED, _UNTIL_ERASED),
        ("updated_at", _l("Profile last changed"), (SERVICE,), RECORDED, _UNTIL_ERASED),
        ("erased_at", _l("Erased on"), (SERVICE,), RECORDED, _ERASURE_DATE_KEPT),
        ("notify_email", _l("Policy notices by email"), (SERVICE,), PROVIDED, _UNTIL_ERASED),
        ("notify_sms", _l("Policy notices by text message"), (SERVICE,), PROVIDED, _UNTIL_ERASED),
        (
            "sms_opted_out_at",
            _l("Opted out of text messages on"),
            (SERVICE,),
            PROVIDED,
            _UNTIL_ERASED,
        ),
        (
            "policy_seen_number",
            _l("Latest policy version whose change notice you have read"),
            (SERVICE,),
            PROVIDED,
            _UNTIL_ERASED,
        ),
        (
            "confirm_guardian_choices",
            _l("Asked to confirm your guardian's choices"),
            (SERVICE,),
            RECORDED,
            _UNTIL_ERASED,
        ),
        (
            "pending_purposes",
            _l("Optional uses you ticked when registering, kept until you confirm your address"),
            (SERVICE,),
            PROVIDED,
            _l(
                "Until you confirm your address, when they become your recorded consent; a "
                "registration never confirmed is erased within days"
            ),
        ),
        (
            "code_failures",
            _l("Wrong sign-in codes entered recently"),
            (SERVICE,),
            RECORDED,
            _UNTIL_ERASED,
        ),
        (
            "code_failures_since",
            _l("First wrong sign-in code of the current hour"),
            (SERVICE,),
            RECORDED,
            _UNTIL_ERASED,
        ),
        (
            "code_locked_until",
            _l("Codes refused until (after too many wrong ones)"),
            (SERVICE,),
            RECORDED,
            _UNTIL_ERASED,
        ),
    ),
    _group(
        "consent_state",
        _l("Your current consent choices"),
        _l("For each optional purpose, whether you have said yes, and since when."),
        ("purpose", _l("Purpose"), (SERVICE,), PROVIDED, _KEPT_ANONYMISED, _OUR_SYSTEMS),
        ("granted", _l("Your answer"), (SERVICE,), PROVIDED, _KEPT_ANONYMISED, _OUR_SYSTEMS),
        ("event_id", _l("The receipt behind it"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        (
            "policy_version_id",
            _l("Policy version in force"),
            (SERVICE,),
            RECORDED,
            _KEPT_ANONYMISED,
        ),
        ("updated_at", _l("Last changed"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
    ),
    _group(
        "consent_event",
        _l("Your consent history"),
        _l("Every time a consent was given or withdrawn, as a receipt you can download."),
        ("receipt_id", _l("Receipt number"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        ("seq", _l("Position in your history"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        ("purpose", _l("Purpose"), (SERVICE,), PROVIDED, _KEPT_ANONYMISED),
        ("granted", _l("Given or withdrawn"), (SERVICE,), PROVIDED, _KEPT_ANONYMISED),
        (
            "policy_version_id",
            _l("Policy version in force"),
            (SERVICE,),
            RECORDED,
            _KEPT_ANONYMISED,
        ),
        ("actor", _l("Who made the change"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        (
            "actor_member_id",
            _l("Which account made the change"),
            (SERVICE,),
            RECORDED,
            _KEPT_ANONYMISED,
        ),
        ("method", _l("How the change was made"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        ("created_at", _l("When"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        ("prev_hash", _l("Link to the previous receipt"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        ("hash", _l("Tamper-evident fingerprint"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        (
            "locale",
            _l("Language of the page you chose on"),
            (SERVICE,),
            RECORDED,
            _KEPT_ANONYMISED,
        ),
    ),
    _group(
        "reconsent_request",
        _l("When we asked you again"),
        _l(
            "Each time a new version of our privacy policy changed a use you had said yes to, "
            "so that your yes no longer counted until you answered again."
        ),
        ("purpose", _l("Purpose"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        (
            "policy_version_id",
            _l("Policy version that asked again"),
            (SERVICE,),
            RECORDED,
            _KEPT_ANONYMISED,
        ),
        ("event_id", _l("The receipt of the yes it asked about"), (SERVICE,), RECORDED,
         _KEPT_ANONYMISED),
        ("created_at", _l("When"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
    ),
    _group(
        "one_time_code",
        _l("Sign-in and verification codes"),
        _l(
            "Codes we sent you to sign in or to confirm a new contact detail. We keep only a "
            "fingerprint of each code, never the code itself."
        ),
        (
            "purpose",
            _l("What the code was for"),
            (SERVICE,),
            RECORDED,
            _CODE_KEPT,
        ),
        ("channel", _l("Sent via"), (SERVICE,), RECORDED, _CODE_KEPT),
        (
            "identifier_digest",
            _l("Fingerprint of the address it was sent to"),
            (SERVICE,),
            RECORDED,
            _CODE_KEPT,
        ),
        (
            "new_value",
            _l("New contact detail waiting to be confirmed"),
            (SERVICE,),
            PROVIDED,
            _CODE_KEPT,
        ),
        (
            "code_hash",
            _l("Fingerprint of the code"),
            (SERVICE,),
            RECORDED,
            _CODE_KEPT,
        ),
        (
            "attempts",
            _l("Wrong attempts"),
            (SERVICE,),
            RECORDED,
            _CODE_KEPT,
        ),
        (
            "created_at",
            _l("Sent at"),
            (SERVICE,),
            RECORDED,
            _CODE_KEPT,
        ),
        (
            "expires_at",
            _l("Expires at"),
            (SERVICE,),
            RECORDED,
            _CODE_KEPT,
        ),
        (
            "consumed_at",
            _l("Used at"),
            (SERVICE,),
            RECORDED,
            _CODE_KEPT,
        ),
    ),
    _group(
        "member_session",
        _l("Where you are signed in"),
        _l(
            "One entry for each sign-in, so that signing out ends it on our side too. We keep "
            "only a fingerprint of the key in your browser's cookie, never the key itself."
        ),
        ("key_digest", _l("Fingerprint of the session key"), (SERVICE,), RECORDED, _SESSION_KEPT),
        ("created_at", _l("Signed in at"), (SERVICE,), RECORDED, _SESSION_KEPT),
        ("expires_at", _l("Session ends at"), (SERVICE,), RECORDED, _SESSION_KEPT),
    ),
    _group(
        "notification",
        _l("Messages we sent you"),
        _l("Every email and text message we sent you, with its delivery status."),
        ("channel", _l("Email or text message"), (SERVICE,), RECORDED, _RECORD_KEPT),
        ("kind", _l("What it was about"), (SERVICE,), RECORDED, _RECORD_KEPT),
        (
            "recipient",
            _l("Address it was sent to"),
            (SERVICE,),
            PROVIDED,
            _MESSAGE_CONTENT_KEPT,
            _MESSAGE_CARRIERS,
        ),
        (
            "subject",
            _l("Subject"),
            (SERVICE,),
            RECORDED,
            _MESSAGE_CONTENT_KEPT,
            _MESSAGE_CARRIERS,
        ),
        (
            "body_text",
            _l("Message text"),
            (SERVICE,),
            RECORDED,
            _MESSAGE_CONTENT_KEPT,
            _MESSAGE_CARRIERS,
        ),
        (
            "body_html",
            _l("Message as formatted email"),
            (SERVICE,),
            RECORDED,
            _MESSAGE_CONTENT_KEPT,
            _MESSAGE_CARRIERS,
        ),
        ("locale", _l("Language"), (SERVICE,), RECORDED, _RECORD_KEPT),
        ("status", _l("Delivery status"), (SERVICE,), RECORDED, _RECORD_KEPT),
        ("attempts", _l("Delivery attempts"), (SERVICE,), RECORDED, _RECORD_KEPT),
        ("provider_id", _l("Delivery reference"), (SERVICE,), RECORDED, _MESSAGE_CONTENT_KEPT),
        ("last_error", _l("Last delivery problem"), (SERVICE,), RECORDED, _MESSAGE_CONTENT_KEPT),
        ("created_at", _l("Written at"), (SERVICE,), RECORDED, _RECORD_KEPT),
        ("sent_at", _l("Sent at"), (SERVICE,), RECORDED, _RECORD_KEPT),
        ("delivered_at", _l("Delivered at"), (SERVICE,), RECORDED, _RECORD_KEPT),
    ),
    _group(
        "deletion_request",
        _l("Your deletion requests"),
        _l("Requests to delete your data, and how we answered them."),
        ("status", _l("Status"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        ("requested_by_id", _l("Who asked"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        ("reason", _l("Your reason"), (SERVICE,), PROVIDED, _l("Removed when your data is erased")),
        ("received_at", _l("Received"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        ("due_at", _l("Due by"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        ("decided_at", _l("Decided"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        ("decided_by_id", _l("Decided by"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        ("refusal_ground", _l("Legal ground of a refusal"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        (
            "refusal_explanation",
            _l("Our explanation of a refusal"),
            (SERVICE,),
            RECORDED,
            _KEPT_ANONYMISED,
        ),
        ("withdrawn_at", _l("Withdrawn"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        (
            "notify_channel",
            _l("How to tell you it is done"),
            (SERVICE,),
            PROVIDED,
            _l("Discarded once the completion notice is sent"),
        ),
        (
            "notify_to",
            _l("Where to tell you it is done"),
            (SERVICE,),
            PROVIDED,
            _l("Discarded once the completion notice is sent"),
        ),
        (
            "notify_locale",
            _l("Language of the completion notice"),
            (SERVICE,),
            PROVIDED,
            _l("Discarded once the completion notice is sent"),
        ),
    ),
    _group(
        "birth_date_review",
        _l("Date-of-birth corrections waiting for review"),
        _l(
            "A corrected date of birth that would make you an adult or a minor in our records: "
            "staff check it before it takes effect."
        ),
        (
            "requested_birth_date",
            _l("The date of birth you asked for"),
            (SERVICE,),
            PROVIDED,
            _UNTIL_ERASED,
        ),
        ("status", _l("Where the review stands"), (SERVICE,), RECORDED, _UNTIL_ERASED),
        ("requested_at", _l("Asked on"), (SERVICE,), RECORDED, _UNTIL_ERASED),
        ("decided_at", _l("Decided on"), (SERVICE,), RECORDED, _UNTIL_ERASED),
    ),
    _group(
        "guardian_link",
        _l("Your guardians"),
        _l("The parent or guardian who approved your account, and how."),
        (
            "contact_channel",
            _l("How we reached your guardian"),
            (SERVICE,),
            PROVIDED,
            _RECORD_KEPT,
        ),
        (
            "contact",
            _l("Your guardian's email or mobile number"),
            (SERVICE,),
            PROVIDED,
            _UNTIL_ERASED,
        ),
        ("guardian_id", _l("Your guardian's account"), (SERVICE,), RECORDED, _RECORD_KEPT),
        ("status", _l("Status"), (SERVICE,), RECORDED, _RECORD_KEPT),
        ("token_hash", _l("Fingerprint of the approval link"), (SERVICE,), RECORDED, _UNTIL_ERASED),
        ("token_expires_at", _l("Approval link expires"), (SERVICE,), RECORDED, _RECORD_KEPT),
        ("invited_at", _l("Guardian asked on"), (SERVICE,), RECORDED, _RECORD_KEPT),
        ("decided_at", _l("Guardian answered on"), (SERVICE,), RECORDED, _RECORD_KEPT),
        ("note", _l("Your guardian's note"), (SERVICE,), PROVIDED, _UNTIL_ERASED),
        ("ended_at", _l("Oversight ended on"), (SERVICE,), RECORDED, _RECORD_KEPT),
        (
            "pending_purpose",
            _l("Use your guardian switched on, waiting for their second confirmation"),
            (SERVICE,),
            RECORDED,
            _UNTIL_ERASED,
        ),
        (
            "pending_token_hash",
            _l("Fingerprint of the second confirmation link"),
            (SERVICE,),
            RECORDED,
            _UNTIL_ERASED,
        ),
        (
            "pending_send_at",
            _l("Second confirmation sent on"),
            (SERVICE,),
            RECORDED,
            _UNTIL_ERASED,
        ),
        (
            "pending_expires_at",
            _l("Second confirmation link expires"),
            (SERVICE,),
            RECORDED,
            _UNTIL_ERASED,
        ),
    ),
    _group(
        "change_event",
        _l("Changes announced to our other systems"),
        _l(
            "When your consent changes or your data is erased, we tell the company's systems "
            "that use your information, so they follow your choice at once."
        ),
        ("type", _l("What changed"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        ("created_at", _l("When it was announced"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        (
            "former_public_id",
            _l("Your member number, in the notice of your erasure"),
            (SERVICE,),
            RECORDED,
            _l("Set only when your data is erased, and removed when the notice period ends"),
        ),
    ),
    _group(
        "audit_event",
        _l("Security and audit log"),
        _l(
            "A record of important actions on your account (such as sign-ins and changes), kept "
            "to protect it from unauthorized access."
        ),
        ("action", _l("Action"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        ("actor_member_id", _l("Who acted"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        ("subject_member_id", _l("Whose account"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        ("details", _l("Details (never personal data)"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        ("created_at", _l("When"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        ("seq", _l("Position in the log of your account"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        ("prev_hash", _l("Link to the previous entry"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
        ("hash", _l("Tamper-evident fingerprint"), (SERVICE,), RECORDED, _KEPT_ANONYMISED),
    ),
)

# Profile columns that are the account's bookkeeping (internal numbers, counters, dates that
# are empty until erasure): the member's page says what they are and why, never their values.
PROFILE_BOOKKEEPING = frozenset({
    "public_id",
    "erased_at",
    "policy_seen_number",
    "confirm_guardian_choices",
    "pending_purposes",
    "code_failures",
    "code_failures_since",
    "code_locked_until",
})

# The same groups as a guardian reads them on a child's page (about the child, not "your").
WARD_GROUP_TITLES = {
    "member": _l("Profile"),
    "consent_state": _l("Current consent choices"),
    "consent_event": _l("Consent history"),
    "reconsent_request": _l("When we asked again"),
    "one_time_code": _l("Sign-in and verification codes"),
    "member_session": _l("Where they are signed in"),
    "notification": _l("Messages we sent"),
    "deletion_request": _l("Deletion requests"),
    "birth_date_review": _l("Date-of-birth corrections waiting for review"),
    "guardian_link": _l("Guardians"),
    "change_event": _l("Changes announced to our other systems"),
    "audit_event": _l("Security and audit log"),
}

# Columns that hold no information about a member: keys, bookkeeping and company content.
# Every database column is either in DATA_INVENTORY or here, with the reason (a test checks).
NOT_MEMBER_DATA: dict[tuple[str, str], str] = {
    ("member", "id"): "internal row key",
    ("consent_state", "member_id"): "internal row key",
    ("consent_event", "id"): "internal row key",
    ("consent_event", "member_id"): "internal row key",
    ("reconsent_request", "id"): "internal row key",
    ("reconsent_request", "member_id"): "internal row key",
    ("one_time_code", "id"): "internal row key",
    ("one_time_code", "token"): "random handle for the code-entry page, no meaning",
    ("one_time_code", "member_id"): "internal row key",
    ("member_session", "id"): "internal row key",
    ("member_session", "member_id"): "internal row key",
    ("notification", "id"): "internal row key",
    ("notification", "public_id"): "random handle, no meaning",
    ("notification", "member_id"): "internal row key",
    ("notification", "dedupe_key"): "built from kinds and internal keys only",
    ("notification", "next_attempt_at"): "delivery scheduling",
    ("notification", "lease_until"): "delivery scheduling",
    ("notification", "content_id"): "internal row key (shared, non-personal content)",
    ("notification", "fan_out_id"): "internal row key",
    ("fan_out", "id"): "internal row key",
    ("deletion_request", "id"): "internal row key",
    ("birth_date_review", "id"): "internal row key",
    ("birth_date_review", "public_id"): "random handle, no meaning",
    ("birth_date_review", "member_id"): "internal row key",
    ("birth_date_review", "decided_by_id"): "staff member who decided (staff data)",
    ("guardian_link", "id"): "internal row key",
    ("guardian_link", "public_id"): "random handle, no meaning",
    ("guardian_link", "minor_id"): "internal row key",
    ("deletion_request", "public_id"): "random handle, no meaning",
    ("deletion_request", "member_id"): "internal row key",
    ("fan_out", "public_id"): "random handle, no meaning",
    ("fan_out", "kind"): "company bulk-send bookkeeping",
    ("fan_out", "cause"): "company bulk-send bookkeeping",
    ("fan_out", "created_by_id"): "staff member who started it (staff data, not the recipient's)",
    ("fan_out", "created_at"): "company bulk-send bookkeeping",
    ("fan_out", "total"): "company bulk-send bookkeeping",
    ("notification_content", "id"): "internal row key",
    ("notification_content", "fan_out_id"): "internal row key",
    ("notification_content", "channel"): "company content shared by many members",
    ("notification_content", "locale"): "company content shared by many members",
    ("notification_content", "subject"): "company content shared by many members",
    ("notification_content", "body_text"): "company content shared by many members",
    ("notification_content", "body_html"): "company content shared by many members",
    ("audit_event", "id"): "internal row key",
    ("policy_version", "id"): "company content",
    ("policy_version", "public_id"): "random handle, no meaning",
    ("incident_notice", "id"): "internal row key",
    ("incident_notice", "public_id"): "random handle, no meaning",
    ("incident_notice", "content"): "company content (the notice text in each language)",
    ("incident_notice", "audience"): "company bulk-send bookkeeping (the recipient filter)",
    ("incident_notice", "created_by_id"): "staff member who wrote it (not a recipient's data)",
    ("incident_notice", "created_at"): "company bulk-send bookkeeping",
    ("incident_notice", "updated_at"): "company bulk-send bookkeeping",
    ("incident_notice", "sent_at"): "company bulk-send bookkeeping",
    ("incident_notice", "sent_by_id"): "staff member who sent it (not a recipient's data)",
    ("incident_notice", "fan_out_id"): "internal row key",
    ("policy_version", "number"): "company content",
    ("policy_version", "title"): "company content",
    ("policy_version", "body_md"): "company content",
    ("policy_version", "summary"): "company content",
    ("policy_version", "changed_purposes"): "company content",
    ("policy_version", "published_at"): "company content",
    ("policy_version", "effective_at"): "company content",
    ("policy_version", "created_at"): "company content",
    ("alembic_version", "version_num"): "schema bookkeeping",
    # The API and outgoing webhooks (issue 7): credentials and settings of company systems.
    ("api_token", "id"): "internal row key",
    ("api_token", "name"): "company system that holds the token",
    ("api_token", "token_hash"): "fingerprint of a company system's credential",
    ("api_token", "prefix"): "first characters of a company system's credential",
    ("api_token", "scopes"): "what a company system may read",
    ("api_token", "created_at"): "credential bookkeeping",
    ("api_token", "last_used_at"): "credential bookkeeping",
    ("api_token", "revoked_at"): "credential bookkeeping",
    ("webhook_subscription", "id"): "internal row key",
    ("webhook_subscription", "public_id"): "random handle, no meaning",
    ("webhook_subscription", "url"): "a company system's address",
    ("webhook_subscription", "secret"): "shared signing key of a company system",
    ("webhook_subscription", "events"): "which events a company system receives",
    ("webhook_subscription", "active"): "subscription bookkeeping",
    ("webhook_subscription", "created_at"): "subscription bookkeeping",
    ("change_event", "id"): "internal row key (the change feed's order)",
    ("change_event", "public_id"): "random event id, no meaning",
    ("change_event", "member_id"): "internal row key",
    ("change_event", "consent_event_id"): "internal row key",
    ("notification", "order_key"): "delivery ordering, built from internal keys only",
    ("notification", "secret"): (
        "a code or link in transit, encrypted with a key outside the database; deleted once sent"
    ),
    ("consent_event", "key_id"): "names the ledger key that made the hash, no meaning",
    ("audit_event", "key_id"): "names the ledger key that made the hash, no meaning",
    ("notification_subject", "notification_id"): "internal row key",
    ("notification_subject", "subject_key"): (
        "an internal row key or a keyed digest of a contact: finds messages at erasure"
    ),
}
