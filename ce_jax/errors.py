"""The one exception type for mistakes a user can fix (bad config, missing data)."""


class UserError(Exception):
  """Bad input: the message names the field, flag, file or step and what was expected."""
