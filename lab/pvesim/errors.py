"""Errors the way pvesh reports them: message on stderr, exit code."""

PARAMETER_ERROR = "400 Parameter verification failed."
# The optimistic-lock failure of every SDN and firewall object (a --digest that is stale).
MODIFIED = "detected modified configuration - file changed by other user? Try again."


class PveError(Exception):
    """
    A failed call. ``message`` is what pvesh prints on stderr; ``exit_code`` is 255 for handler
    errors (Perl's die) and 1 for paths without a handler; ``usage`` adds pvesh's usage line, as
    it does for 400 errors it catches itself.
    """

    def __init__(self, message, exit_code=255, usage=False, params=None):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.usage = usage
        self.params = params or {}

    @classmethod
    def parameters(cls, errors):
        """400 Parameter verification failed, one ``param: message`` line each, sorted."""
        lines = [f"{name}: {errors[name]}" for name in sorted(errors)]
        return cls("\n".join([PARAMETER_ERROR, *lines]), usage=True, params=errors)

    def wrapped(self, context):
        """The SDN lock helper's ``<context>: <error>`` form, a plain string without usage."""
        return PveError(f"{context}: {self.message}", exit_code=self.exit_code)
