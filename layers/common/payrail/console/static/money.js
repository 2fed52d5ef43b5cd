// Money as the API wants it: an integer number of minor units, never a float.
// A typed amount is parsed as text: the digits before and after the point are joined into one
// integer string, so "0.29" is exactly 29 and never 28.999999999999996.

export const CURRENCIES = ["ZAR", "BWP", "EUR", "GBP", "GHS", "KES", "NAD", "NGN", "TZS", "UGX", "USD"];
export const MINOR_DIGITS = 2; // every currency the API pays out in has two minor digits
export const MAX_AMOUNT_MINOR = 1_000_000_000; // the API's ceiling: 10,000,000.00

const PLAIN = /^(\d+)(?:\.(\d+))?$/;
const GROUPED = /^(\d{1,3}(?:,\d{3})+)(?:\.(\d+))?$/; // "1,250.50"

/** "1,250.5" -> {ok: true, minor: 125050}; anything else -> {ok: false, error}. */
export function parseAmount(text) {
  const value = String(text).trim();
  if (value === "") return { ok: false, error: "Enter an amount." };
  const match = PLAIN.exec(value) || GROUPED.exec(value);
  if (!match) return { ok: false, error: "Enter an amount like 125.50 (digits, optionally a point and two decimals)." };
  const whole = match[1].replaceAll(",", "");
  const fraction = match[2] ?? "";
  if (fraction.length > MINOR_DIGITS) return { ok: false, error: `Use at most ${MINOR_DIGITS} decimal places.` };
  const minor = BigInt(whole + fraction.padEnd(MINOR_DIGITS, "0"));
  if (minor <= 0n) return { ok: false, error: "The amount must be more than zero." };
  if (minor > BigInt(MAX_AMOUNT_MINOR)) {
    return { ok: false, error: `The amount must be at most ${formatMinor(MAX_AMOUNT_MINOR)}.` };
  }
  return { ok: true, minor: Number(minor) }; // exact: at most 1e9, far below 2**53
}

/** 125050 -> "1,250.50"; -2999 -> "-29.99". Integer arithmetic on a string, no division. */
export function formatMinor(minor) {
  const value = BigInt(minor);
  const digits = (value < 0n ? -value : value).toString().padStart(MINOR_DIGITS + 1, "0");
  const whole = digits.slice(0, -MINOR_DIGITS).replace(/\B(?=(\d{3})+$)/g, ",");
  return `${value < 0n ? "-" : ""}${whole}.${digits.slice(-MINOR_DIGITS)}`;
}

export function formatMoney(minor, currency) {
  return `${formatMinor(minor)} ${currency}`;
}
