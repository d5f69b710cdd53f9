// keyguard dashboard: WebAuthn enrolment and assertions (security keys, passkeys). No dependencies.
// Forms with data-webauthn-purpose get an assertion for that purpose before they are sent;
// a form with data-webauthn-enrol enrols a new authenticator. The CSRF token comes from the page.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";
  var me = document.currentScript;
  var base = me ? new URL(me.src).pathname.replace(/\/static\/webauthn\.js$/, "") : "";
  var status = document.querySelector("[data-webauthn-status]");

  function say(text) { if (status) status.textContent = text; }

  function toBytes(b64url) {
    var b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var raw = window.atob(b64), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out.buffer;
  }

  function toB64url(buffer) {
    if (!buffer) return null;
    var bytes = new Uint8Array(buffer), s = "";
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return window.btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function post(path, body) {
    return window.fetch(base + path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {})
    }).then(function (r) {
      return r.json().catch(function () { return { error: "HTTP " + r.status }; }).then(function (j) {
        if (!r.ok) throw new Error(j.error || ("HTTP " + r.status));
        return j;
      });
    });
  }

  function descriptors(list) {
    return (list || []).map(function (d) { return { type: d.type, id: toBytes(d.id), transports: d.transports }; });
  }

  function enrol(form) {
    say("Touch your security key…");
    post("/webauthn/register/options", {}).then(function (j) {
      var o = j.publicKey;
      o.challenge = toBytes(o.challenge);
      o.user.id = toBytes(o.user.id);
      o.excludeCredentials = descriptors(o.excludeCredentials);
      return navigator.credentials.create({ publicKey: o });
    }).then(function (cred) {
      var r = cred.response;
      var body = {
        name: (form.querySelector('[name="name"]') || {}).value || "security key",
        credential: {
          id: cred.id, rawId: toB64url(cred.rawId), type: cred.type,
          response: {
            clientDataJSON: toB64url(r.clientDataJSON),
            attestationObject: toB64url(r.attestationObject),
            transports: r.getTransports ? r.getTransports() : []
          },
          clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
          authenticatorAttachment: cred.authenticatorAttachment || null
        }
      };
      return post("/webauthn/register", body);
    }).then(function () {
      say("Security key enrolled.");
      window.location.reload();
    }).catch(function (e) { say("Enrolment failed: " + e.message); });
  }

  function assertThenSubmit(form) {
    var purpose = form.getAttribute("data-webauthn-purpose");
    say("Touch your security key…");
    post("/webauthn/assert/options", { purpose: purpose }).then(function (j) {
      var o = j.publicKey;
      o.challenge = toBytes(o.challenge);
      o.allowCredentials = descriptors(o.allowCredentials);
      return navigator.credentials.get({ publicKey: o });
    }).then(function (cred) {
      var r = cred.response;
      form.querySelector('[name="assertion"]').value = JSON.stringify({
        id: cred.id, rawId: toB64url(cred.rawId), type: cred.type,
        response: {
          clientDataJSON: toB64url(r.clientDataJSON),
          authenticatorData: toB64url(r.authenticatorData),
          signature: toB64url(r.signature),
          userHandle: toB64url(r.userHandle)
        },
        clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
        authenticatorAttachment: cred.authenticatorAttachment || null
      });
      say("Confirmed.");
      form.submit();
    }).catch(function (e) { say("Security key not confirmed: " + e.message); });
  }

  var enrolForms = document.querySelectorAll("[data-webauthn-enrol]");
  for (var i = 0; i < enrolForms.length; i++) {
    enrolForms[i].addEventListener("submit", function (ev) { ev.preventDefault(); enrol(ev.currentTarget); });
  }
  var actionForms = document.querySelectorAll("form[data-webauthn-purpose]");
  for (var k = 0; k < actionForms.length; k++) {
    actionForms[k].addEventListener("submit", function (ev) {
      var form = ev.currentTarget;
      var otp = form.querySelector('[name="otp"]');
      if (otp && otp.value.trim()) return;  // a TOTP code instead of a security key
      if (!window.PublicKeyCredential) { say("This browser has no WebAuthn: enter a TOTP code."); ev.preventDefault(); return; }
      ev.preventDefault();
      assertThenSubmit(form);
    });
  }
})();
