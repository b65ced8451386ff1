// The page of `mobilenet serve`: pick a model, drop or choose an image, see its result drawn.
// Plain JavaScript served by the same process: no build step, nothing fetched from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const BOX_COLORS = ["#ffb000", "#00e0ff", "#7dff5a", "#ff6ad5", "#ffe14d", "#9f9bff", "#ff8a5c", "#4dffc3"];
let models = [];

async function loadModels() {
  const response = await fetch("/v1/models");
  models = (await response.json()).models;
  const select = $("model");
  select.innerHTML = "";
  for (const model of models) {
    const option = document.createElement("option");
    option.value = model.name;
    option.textContent = `${model.name} (${model.kind})`;
    select.append(option);
  }
  showAbout();
}

function current() {
  return models.find((model) => model.name === $("model").value);
}

function showAbout() {
  const model = current();
  $("about").textContent = model
    ? `${model.gives}; ${model.input_size}x${model.input_size}, ${model.backend} ${model.precision}`
    : "no model is served";
}

function clearResult(state, text) {
  const result = $("result");
  result.dataset.state = state;
  $("status").textContent = text;
  for (const id of ["bars", "legend", "boxes", "json"]) $(id).replaceChildren();
}

function loadPicture(file) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("the browser cannot show this file (the server may still read it)"));
    image.src = URL.createObjectURL(file);
  });
}

function drawPicture(image) {
  const canvas = $("canvas");
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  return context;
}

async function run(file) {
  const model = current();
  if (!model || !file) return;
  clearResult("running", `running ${model.name} on ${file.name}...`);
  let picture = null;
  try {
    picture = await loadPicture(file);
    drawPicture(picture);
  } catch (error) {
    $("canvas").width = 0;
  }
  const started = performance.now();
  const response = await fetch(`/v1/models/${encodeURIComponent(model.name)}:predict`, {
    method: "POST",
    headers: { "Content-Type": file.type || "application/octet-stream" },
    body: file,
  });
  const answer = await response.json();
  if (!response.ok) {
    clearResult("error", `${response.status}: ${answer.error}`);
    return;
  }
  const took = Math.round(performance.now() - started);
  clearResult("done", `${model.name}, ${took} ms`);
  $("result").dataset.kind = model.kind;
  if (answer.top) showClasses(answer.top);
  if (answer.mask) await showMask(answer, picture);
  if (answer.detections) showBoxes(answer.detections, picture);
  $("json").textContent = JSON.stringify(answer, (key, value) => (key === "mask" ? "(PNG)" : value), 1);
}

function showClasses(top) {
  for (const entry of top) {
    const item = document.createElement("li");
    const label = document.createElement("div");
    label.className = "label";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = entry.name;
    const share = document.createElement("span");
    share.textContent = `${(100 * entry.prob).toFixed(1)}%`;
    label.append(name, share);
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = `${Math.max(1, 100 * entry.prob)}%`;
    item.append(label, bar);
    $("bars").append(item);
  }
}

async function showMask(answer, picture) {
  const mask = new Image();
  await new Promise((resolve, reject) => {
    mask.onload = resolve;
    mask.onerror = () => reject(new Error("the mask did not decode"));
    mask.src = answer.mask;
  });
  const context = picture ? drawPicture(picture) : null;
  if (context) {
    context.globalAlpha = 0.6;  // the background is transparent in the mask: only the classes are tinted
    context.drawImage(mask, 0, 0, context.canvas.width, context.canvas.height);
    context.globalAlpha = 1;
  }
  $("result").dataset.mask = `${mask.naturalWidth}x${mask.naturalHeight}`;
  for (const [name, share] of Object.entries(answer.classes)) {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = answer.colors[name];
    const label = document.createElement("span");
    label.textContent = `${name} ${(100 * share).toFixed(1)}%`;
    item.append(swatch, label);
    $("legend").append(item);
  }
}

function showBoxes(detections, picture) {
  const context = picture ? drawPicture(picture) : null;
  const width = context ? Math.max(2, Math.round(Math.max(context.canvas.width, context.canvas.height) / 250)) : 0;
  for (const found of detections) {
    const color = BOX_COLORS[found.class % BOX_COLORS.length];
    const text = `${found.name} ${found.score.toFixed(2)}`;
    if (context) {
      const [x0, y0, x1, y1] = found.box;
      context.lineWidth = width;
      context.strokeStyle = color;
      context.strokeRect(x0, y0, x1 - x0, y1 - y0);
      context.font = `${Math.max(12, 6 * width)}px sans-serif`;
      const height = Math.max(12, 6 * width) + 4;
      const top = y0 >= height ? y0 - height : y0;
      context.fillStyle = color;
      context.fillRect(x0, top, context.measureText(text).width + 6, height);
      context.fillStyle = "#000";
      context.fillText(text, x0 + 3, top + height - 4);
    }
    const item = document.createElement("li");
    item.textContent = `${text} [${found.box.map(Math.round).join(", ")}]`;
    $("boxes").append(item);
  }
  if (!detections.length) $("status").textContent += ": no detections above the server's score";
}

function choose(files) {
  if (files && files.length) run(files[0]).catch((error) => clearResult("error", error.message));
}

$("model").addEventListener("change", () => {
  showAbout();
  choose($("file").files);
});
$("file").addEventListener("change", () => choose($("file").files));
const drop = $("drop");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  choose(event.dataTransfer.files);
});
loadModels().catch((error) => clearResult("error", `cannot list the models: ${error.message}`));
