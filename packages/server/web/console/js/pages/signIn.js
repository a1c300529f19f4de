import { ApiError, signIn } from "../api.js";
import { h } from "../dom.js";

/** Sign-in: the admin key or an operator's key is sent once and exchanged for an HttpOnly session cookie. */
export function renderSignIn({ main, next, onSignedIn }) {
  const error = h("p", { class: "error-text", id: "sign-in-error", role: "alert" });
  const input = h("input", {
    type: "password",
    name: "key",
    id: "admin-key",
    autocomplete: "current-password",
    required: true,
    "aria-describedby": "sign-in-hint sign-in-error",
  });
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    {
      onsubmit: async (event) => {
        event.preventDefault();
        error.textContent = "";
        button.disabled = true;
        try {
          const who = await signIn(input.value);
          input.value = "";
          onSignedIn(next, who);
        } catch (e) {
          error.textContent =
            e instanceof ApiError && e.status === 401 ? "That is neither the admin key nor an operator's key." : `Could not sign in: ${e.message}`;
          input.select();
        } finally {
          button.disabled = false;
        }
      },
    },
    h("label", { for: "admin-key" }, "Key"),
    input,
    h(
      "p",
      { class: "hint", id: "sign-in-hint" },
      "Your operator key, or the admin key: the one from TIDINGS_ADMIN_KEY, or the one the service printed at its first start (kept in its data folder as admin-key).",
    ),
    error,
    button,
  );
  main.append(h("section", { class: "panel signin" }, h("h1", {}, "Sign in to Tidings"), form));
  input.focus();
}
