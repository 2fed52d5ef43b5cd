// The console's entry point: who is signed in, the unreachable-API banner, and the panels.
import { api, ApiError, onReachability, onSignedOut, refreshSession, Unreachable } from "./api.js";
import { Balances } from "./balances.js";
import { Bank } from "./bank.js";
import { $, announce } from "./dom.js";
import { Payouts } from "./payouts.js";
import { Webhooks } from "./webhooks.js";

const balances = new Balances();
const payouts = new Payouts(balances);
const bank = new Bank(null);
const webhooks = new Webhooks();
let user = null;

function show(signedIn) {
  $("#signed-in").hidden = !signedIn;
  $("#signed-out").hidden = signedIn;
  $("#session").hidden = !signedIn;
  if (signedIn) $("#who").textContent = user.name ? `${user.name} (${user.email})` : user.email;
}

function signedOut(message) {
  user = null;
  payouts.stop();
  balances.stop();
  bank.stop();
  webhooks.stop();
  show(false);
  if (message) $("#sign-in-status").textContent = message;
}

async function whoAmI() {
  try {
    user = (await api("GET", "/auth/me")).body;
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      // The 15-minute access cookie may have expired while the session is still good.
      if (await refreshSession()) return whoAmI();
      return false;
    }
    throw error;
  }
}

async function boot() {
  try {
    if (!(await whoAmI())) return signedOut();
  } catch (error) {
    if (error instanceof Unreachable) return setTimeout(boot, 3000);
    throw error;
  }
  show(true);
  bank.setUser(user);
  await Promise.allSettled([balances.start(), payouts.start(), bank.start(), webhooks.start()]);
}

$("#sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const query = new URLSearchParams({ redirect_to: "/" });
  const hint = event.target.elements.login_hint.value.trim();
  if (hint) query.set("login_hint", hint);
  window.location.assign(`/auth/login?${query}`);
});

$("#sign-out").addEventListener("click", async () => {
  try {
    await api("POST", "/auth/logout");
  } catch (error) {
    if (error instanceof Unreachable) return announce("Could not sign out: the API is unreachable.");
  }
  signedOut("You are signed out.");
  $("#sign-in-form").elements.login_hint.focus();
});

onSignedOut(() => signedOut("Your session has ended; sign in again."));

onReachability((reachable) => {
  $("#banner").hidden = reachable;
  if (reachable) announce("The API is reachable again.");
});
$("#banner-retry").addEventListener("click", () => {
  if (user) payouts.poller.now();
  else boot();
});

boot();
