// The prediction form: fields come from GET /schema (the served model's feature schema).
"use strict";

const state = { schema: null };
const $ = (id) => document.getElementById(id);

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  document.querySelectorAll(".field .bad").forEach((el) => el.classList.remove("bad"));
}

// Medians and ranges come as binary floats (1.8650000000000002): show them as people write them.
const tidy = (value) => String(Number(Number(value).toPrecision(6)));

function describeModel(model) {
  return `${model.name} version ${model.version} (@${model.alias}, ${model.runtime} runtime)`;
}

async function readJson(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return { detail: text || response.statusText };
  }
}

const isCategorical = (feature) => feature.type === "categorical";

function numberField(feature, id) {
  const input = document.createElement("input");
  Object.assign(input, { id, name: feature.name, type: "number", step: "any", required: !feature.nullable });
  if (feature.minimum !== null && feature.minimum !== undefined) input.min = tidy(feature.minimum);
  if (feature.maximum !== null && feature.maximum !== undefined) input.max = tidy(feature.maximum);
  if (feature.nullable) input.placeholder = "empty = missing";
  input.addEventListener("input", () => {
    const value = Number(input.value);
    const outside = input.value !== "" && (value < feature.minimum || value > feature.maximum);
    input.classList.toggle("out-of-range", outside);
  });
  return input;
}

function categoryField(feature, id) {
  // A select of the categories seen in training; an empty choice where the value may be missing.
  const select = document.createElement("select");
  Object.assign(select, { id, name: feature.name, required: !feature.nullable });
  const choices = feature.nullable ? ["", ...feature.categories] : feature.categories;
  for (const category of choices) {
    const option = document.createElement("option");
    option.value = category;
    option.textContent = category === "" ? "(missing)" : category;
    select.append(option);
  }
  return select;
}

function hintFor(feature) {
  const missing = feature.nullable ? "; may be left empty" : "";
  if (isCategorical(feature)) {
    const vocabulary = feature.unknown === "error" ? "" : " (others accepted)";
    return `${feature.categories.length} categories${vocabulary}${missing}`;
  }
  if (feature.minimum === null || feature.minimum === undefined) return `a number${missing}`;
  return `training range ${tidy(feature.minimum)} – ${tidy(feature.maximum)}${missing}`;
}

function setTypical(control, feature) {
  if (feature.typical === null || feature.typical === undefined) control.value = "";
  else control.value = isCategorical(feature) ? feature.typical : tidy(feature.typical);
}

function buildFields(schema) {
  const container = $("fields");
  container.replaceChildren();
  schema.features.forEach((feature, index) => {
    const id = `feature-${index}`;
    const wrap = document.createElement("div");
    wrap.className = "field";
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = feature.name;
    const control = isCategorical(feature) ? categoryField(feature, id) : numberField(feature, id);
    control.dataset.feature = feature.name;
    control.dataset.index = String(index);
    setTypical(control, feature);
    const hint = document.createElement("small");
    hint.textContent = hintFor(feature);
    wrap.append(label, control, hint);
    container.append(wrap);
  });
}

function controls() {
  return document.querySelectorAll(".field input, .field select");
}

function resetFields() {
  controls().forEach((control) => {
    setTypical(control, state.schema.features[Number(control.dataset.index)]);
    control.classList.remove("out-of-range", "bad");
  });
}

async function loadSchema() {
  try {
    const response = await fetch("/schema");
    const body = await readJson(response);
    if (!response.ok) {
      $("model-line").textContent = `Not ready: ${body.detail}. Retrying…`;
      setTimeout(loadSchema, 2000);
      return;
    }
    state.schema = body;
    $("model-line").textContent = `Serving ${describeModel(body.model)}`;
    buildFields(body);
    $("predict-button").disabled = false;
    $("reset-button").disabled = false;
  } catch (err) {
    $("model-line").textContent = `Cannot reach the predictor (${err}). Retrying…`;
    setTimeout(loadSchema, 2000);
  }
}

function collectInstance() {
  const instance = {};
  for (const control of controls()) {
    const feature = state.schema.features[Number(control.dataset.index)];
    const raw = control.value.trim();
    if (raw === "") {
      if (!feature.nullable) {
        control.classList.add("bad");
        control.focus();
        throw new Error(`${feature.name}: a value is required`);
      }
      instance[feature.name] = null; // missing: the model imputes it
    } else if (isCategorical(feature)) {
      instance[feature.name] = raw;
    } else if (!Number.isFinite(Number(raw))) {
      control.classList.add("bad");
      control.focus();
      throw new Error(`${feature.name}: enter a number`);
    } else {
      instance[feature.name] = Number(raw);
    }
  }
  return instance;
}

function markField(field) {
  // The server names fields like "instances[0].hue": highlight that control.
  const match = /^instances\[0\]\.(.+)$/.exec(field || "");
  if (!match) return;
  for (const control of controls()) {
    if (control.dataset.feature === match[1]) control.classList.add("bad");
  }
}

function showResult(body) {
  const prediction = body.predictions[0];
  $("result-class").textContent = prediction.class_name;
  $("result-label").textContent = `(label ${prediction.label})`;
  $("result-model").textContent = describeModel(body.model);
  $("result-id").textContent = prediction.id;
  const rows = Object.entries(prediction.probabilities).map(([name, p]) => {
    const tr = document.createElement("tr");
    if (name === prediction.class_name) tr.className = "winner";
    const nameCell = document.createElement("td");
    nameCell.textContent = name;
    const valueCell = document.createElement("td");
    valueCell.textContent = `${(p * 100).toFixed(1)} %`;
    const barCell = document.createElement("td");
    barCell.className = "bar";
    const bar = document.createElement("span");
    bar.style.width = `${Math.max(0, Math.min(100, p * 100))}%`;
    barCell.append(bar);
    tr.append(nameCell, valueCell, barCell);
    return tr;
  });
  $("result-probabilities").querySelector("tbody").replaceChildren(...rows);
  $("result").hidden = false;
}

async function onSubmit(event) {
  event.preventDefault();
  clearError();
  let instance;
  try {
    instance = collectInstance();
  } catch (err) {
    showError(err.message);
    return;
  }
  const button = $("predict-button");
  button.disabled = true;
  try {
    const response = await fetch("/predict", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ instances: [instance] }),
    });
    const body = await readJson(response);
    if (!response.ok) {
      $("result").hidden = true; // never leave an earlier result next to an error
      markField(body.field);
      showError(`The predictor refused the request (HTTP ${response.status}): ${body.detail}`);
      return;
    }
    showResult(body);
  } catch (err) {
    $("result").hidden = true;
    showError(`Cannot reach the predictor: ${err}`);
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("predict-form").addEventListener("submit", onSubmit);
  $("reset-button").addEventListener("click", resetFields);
  loadSchema();
});
