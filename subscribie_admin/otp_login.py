"""The admin's login form when the second factor is required: django-otp's, plus one
convenience -- a user with exactly one confirmed device need not pick it from a list first.

django-otp asks for an explicit device because trying a token against each of a user's
devices would record a failed attempt (and throttle) every device that did not match; with a
single device there is nothing else to throttle, so choosing it is the same as the user's pick.
"""

from __future__ import annotations

from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm


class OneDeviceOTPLoginForm(OTPAdminAuthenticationForm):
    def _chosen_device(self, user):
        device = super()._chosen_device(user)
        if device is None:
            devices = list(devices_for_user(user, confirmed=True, for_verify=True))
            if len(devices) == 1:
                return devices[0]
        return device
