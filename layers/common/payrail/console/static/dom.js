// A tiny element builder: text always goes in as text nodes, never as HTML.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** Each field's message in its form's ``[data-error-for]`` element, the field marked invalid; the
 * first field with an error gets the focus. */
export function showErrors(form, errors) {
  for (const element of form.querySelectorAll("[data-error-for]")) {
    const name = element.dataset.errorFor;
    element.textContent = errors[name] || "";
    form.elements[name].setAttribute("aria-invalid", errors[name] ? "true" : "false");
  }
  const first = Object.keys(errors).find((name) => form.elements[name]);
  if (first) form.elements[first].focus();
}

/** Say something to screen-reader users through the page's polite live region. */
export function announce(message) {
  const region = $("#announcer");
  region.textContent = "";
  // A fresh text node after a tick, so the same message twice is still announced.
  setTimeout(() => { region.textContent = message; }, 50);
}

/** Run ``work`` as a form's one submission: the form is marked busy and its submit button disabled
 * until it settles, and a submission while one is running does nothing (a double click sends one
 * request). Checks the form's fields first with ``read`` (body or errors, shown next to the fields);
 * ``work(body)`` runs only when they pass. ``status`` says what happened. */
export async function submitOnce(form, status, read, work) {
  if (form.getAttribute("aria-busy") === "true") return;
  const { body, errors } = read(form);
  showErrors(form, errors || {});
  if (errors) {
    status.textContent = "Check the highlighted fields.";
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  form.setAttribute("aria-busy", "true");
  try {
    await work(body);
  } finally {
    button.disabled = false;
    form.removeAttribute("aria-busy");
  }
}

export function when(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}
