/**
 * The one rule for action names, shared by the request decoder (a request naming anything else is
 * malformed), the action registry (declared and registered actions) and the config schema: a lower-case
 * letter, then up to 63 letters, digits, `_`, `.` or `-`.
 */

/** Longest action name, in characters. */
export const ACTION_CHARS_MAX = 64

/** Action names; see the module comment. */
export const ACTION_NAME_PATTERN = /^[a-z][\w.-]{0,63}$/

/** True when `name` may name an action. Pure. */
export function isValidActionName(name: string): boolean {
  return ACTION_NAME_PATTERN.test(name)
}
