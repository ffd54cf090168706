"""The five cases in which the policy lets the company refuse a deletion request, and the
remedies a refused member is told of."""

from __future__ import annotations

from enum import StrEnum

from .text import _l


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
