// Money as the API wants it: an integer number of the currency's ISO 4217 minor units, never a
// float. How many digits each currency's minor unit has (UGX 0, ZAR 2, KWD 3) comes from
// currencies.js, which the console function generates from the same ISO 4217 list the API uses.
// A typed amount is parsed as text: the digits before and after the point are joined into one
// integer string, so "0.29" is exactly 29 and never 28.999999999999996.
import { EXPONENTS, PAYOUT_CURRENCIES } from "./currencies.js";

const DEFAULT_CURRENCY = "ZAR";
export const CURRENCIES = [DEFAULT_CURRENCY, ...PAYOUT_CURRENCIES.filter((code) => code !== DEFAULT_CURRENCY)];
export const MAX_AMOUNT_MINOR = 1_000_000_000; // the API's ceiling, in minor units

const PLAIN = /^(\d+)(?:\.(\d+))?$/;
const GROUPED = /^(\d{1,3}(?:,\d{3})+)(?:\.(\d+))?$/; // "1,250.50"

/** The ISO 4217 exponent of `currency`, or null for a code without one. */
export function exponentOf(currency) {
  return Object.hasOwn(EXPONENTS, currency) ? EXPONENTS[currency] : null;
}

function example(digits) {
  return digits ? `125.${"5".padEnd(digits, "0")}` : "125";
}

/** ("1,250.5", "ZAR") -> {ok: true, minor: 125050}; ("12550", "UGX") -> 12550; else {ok: false, error}. */
export function parseAmount(text, currency) {
  const digits = exponentOf(currency);
  if (digits === null) return { ok: false, error: "Choose a currency first." };
  const value = String(text).trim();
  if (value === "") return { ok: false, error: "Enter an amount." };
  const match = PLAIN.exec(value) || GROUPED.exec(value);
  if (!match) {
    const how = digits ? `optionally a point and ${digits} decimals` : "no decimals";
    return { ok: false, error: `Enter an amount like ${example(digits)} (digits, ${how}).` };
  }
  const whole = match[1].replaceAll(",", "");
  const fraction = match[2] ?? "";
  if (fraction.length > digits) {
    const error = digits ? `Use at most ${digits} decimal places.` : `${currency} has no minor unit: use whole amounts.`;
    return { ok: false, error };
  }
  const minor = BigInt(whole + fraction.padEnd(digits, "0"));
  if (minor <= 0n) return { ok: false, error: "The amount must be more than zero." };
  if (minor > BigInt(MAX_AMOUNT_MINOR)) {
    return { ok: false, error: `The amount must be at most ${formatMinor(MAX_AMOUNT_MINOR, currency)}.` };
  }
  return { ok: true, minor: Number(minor) }; // exact: at most 1e9, far below 2**53
}

/** (125050, "ZAR") -> "1,250.50"; (-2999, "USD") -> "-29.99"; (12550, "UGX") -> "12,550".
 * Integer arithmetic on a string, no division; null for a currency without an exponent. */
export function formatMinor(minor, currency) {
  const digits = exponentOf(currency);
  if (digits === null) return null;
  const value = BigInt(minor);
  const text = (value < 0n ? -value : value).toString().padStart(digits + 1, "0");
  const whole = text.slice(0, text.length - digits).replace(/\B(?=(\d{3})+$)/g, ",");
  const sign = value < 0n ? "-" : "";
  return digits ? `${sign}${whole}.${text.slice(-digits)}` : `${sign}${whole}`;
}

/** "1,250.50 ZAR"; an amount in a currency without a known exponent is shown as it came. */
export function formatMoney(minor, currency) {
  const formatted = formatMinor(minor, currency);
  return formatted === null ? `${minor} ${currency || "(no currency)"} minor units` : `${formatted} ${currency}`;
}
