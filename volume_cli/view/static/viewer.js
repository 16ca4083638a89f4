// The `volume view` page: plays a splat sequence at its own timestamps while the mouse (or touch)
// orbits, pans and zooms around the head. It reads view.json beside index.html (written by
// volume_cli/view/page.py) and streams frames/NNNNNN.spz ahead of the playhead. Everything it loads
// comes from the same origin: the renderer (three.js + Spark) is bundled in vendor/.
import { THREE, OrbitControls, SparkRenderer, SplatMesh, SplatFileType } from "./vendor/three-spark.js";

const AHEAD = 24; // frames requested ahead of the playhead
const MAX_IN_FLIGHT = 4; // frame requests at once
const SPLAT_BUDGET = 8e6; // splats kept decoded (~16 bytes each on the GPU); farthest-ahead evicted first
const RESYNC_S = 0.15; // the source video is re-seeked when it drifts this far from the clock

const $ = (id) => document.getElementById(id);
let notice = ""; // a message that stays (a frame or the video that failed), over loading/buffering
const status = (text) => { $("status").textContent = notice || text; };
const warn = (text) => { notice = text; status(""); };

const test = { ready: false, errors: [], stalls: 0, framesShown: 0, ticks: 0, shownAtTick: 0, shownLog: [] }; // read by the browser tests
window.volumeView = { test };

let view;
try {
  const response = await fetch("view.json");
  if (!response.ok) throw new Error(`view.json: HTTP ${response.status}`);
  view = await response.json();
} catch (e) {
  status(`Cannot load the sequence: ${e.message}`);
  test.errors.push(String(e));
  throw e;
}
document.title = `${view.title} - volume view`;

// -- time line ----------------------------------------------------------------------------------
const frames = view.frames; // [{t, url, splats}], in time order
const t0 = frames[0].t;
const tEnd = view.end_s > t0 ? view.end_s : t0 + 1; // a single frame gets a nominal second
const span = tEnd - t0;

function frameAt(t) { // the last frame whose time is <= t (binary search)
  let lo = 0, hi = frames.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (frames[mid].t <= t + 1e-6) lo = mid; else hi = mid - 1;
  }
  return lo;
}

// -- scene: OpenCV's camera frame (x right, y down, z forward) turned into three.js's (y up, the
// camera looking down -z) by a half turn about x; the files themselves stay as they are.
const canvas = $("canvas");
const renderer = new THREE.WebGLRenderer({ canvas, antialias: false });
renderer.setClearColor(new THREE.Color(view.background), 1);
const scene = new THREE.Scene();
scene.add(new SparkRenderer({ renderer }));
const person = new THREE.Group();
person.quaternion.set(1, 0, 0, 0);
scene.add(person);

const [imageW, imageH] = view.image_size;
const { fx, fy } = view.intrinsics;
const target = new THREE.Vector3(view.target[0], -view.target[1], -view.target[2]);
const camera = new THREE.PerspectiveCamera(50, 1, 0.01, 100);
const controls = new OrbitControls(camera, canvas);

function fitFieldOfView() {
  // Show at least the input image's field: its vertical one, or more when the canvas is narrower.
  const aspect = canvas.clientWidth / Math.max(1, canvas.clientHeight);
  const halfY = imageH / 2 / fy, halfX = imageW / 2 / fx;
  camera.fov = 2 * Math.atan(Math.max(halfY, halfX / aspect)) * 180 / Math.PI;
  camera.aspect = aspect;
  camera.updateProjectionMatrix();
}

function resetView() {
  // The input camera's position, turned to look at the head, upright.
  camera.position.set(0, 0, 0);
  camera.up.set(0, 1, 0);
  controls.target.copy(target);
  camera.lookAt(target);
  controls.update();
}

function resize() {
  renderer.setSize(canvas.clientWidth, canvas.clientHeight, false);
  fitFieldOfView();
}
new ResizeObserver(resize).observe($("splats"));
resize();
resetView();

// -- frames: fetched and decoded ahead of the playhead, evicted when over budget ------------------
const cache = new Map(); // frame index -> {state: "loading" | "ready" | "error", mesh}
let inFlight = 0;
let decodedSplats = 0;
let current = 0; // the frame the clock is on
let shown = -1; // the frame on screen

function aheadDistance(i) {
  const d = i - current;
  if (d >= 0) return d;
  return loop ? d + frames.length : frames.length + -d;
}

async function load(i) {
  const entry = { state: "loading", mesh: null };
  cache.set(i, entry);
  inFlight++;
  try {
    const response = await fetch(frames[i].url);
    if (!response.ok) throw new Error(`${frames[i].url}: HTTP ${response.status}`);
    const fileBytes = new Uint8Array(await response.arrayBuffer());
    const mesh = new SplatMesh({ fileBytes, fileType: SplatFileType.SPZ });
    await mesh.initialized;
    if (cache.get(i) !== entry) { mesh.dispose(); return; } // evicted while loading
    entry.mesh = mesh; // kept out of the scene until shown: Spark draws (and sorts) what is in it
    entry.state = "ready";
    decodedSplats += frames[i].splats;
    evict();
  } catch (e) {
    entry.state = "error";
    test.errors.push(String(e));
    warn(`Frame ${i}: ${e.message}`);
  } finally {
    inFlight--;
    requestAhead();
  }
}

function evict() {
  while (decodedSplats > SPLAT_BUDGET) {
    let worst = -1, worstD = -1;
    for (const [i, entry] of cache) {
      if (entry.state === "ready" && i !== shown && aheadDistance(i) > worstD) { worst = i; worstD = aheadDistance(i); }
    }
    if (worst < 0 || worstD <= AHEAD) return; // keep the window even if it is over budget
    const entry = cache.get(worst);
    entry.mesh.dispose();
    cache.delete(worst);
    decodedSplats -= frames[worst].splats;
  }
}

function requestAhead() {
  for (let k = 0; k <= AHEAD && k < frames.length && inFlight < MAX_IN_FLIGHT; k++) {
    if (current + k >= frames.length && !loop) break;
    const i = (current + k) % frames.length; // past the end: the start, when looping
    if (!cache.has(i)) load(i);
  }
}

function settled(i) { // loaded, or failed (then the last frame stays up and time goes on)
  const entry = cache.get(i);
  return Boolean(entry && entry.state !== "loading");
}

function show(i) {
  const entry = cache.get(i);
  if (!entry || entry.state !== "ready") return false;
  if (shown !== i) {
    const old = cache.get(shown);
    if (old && old.mesh) person.remove(old.mesh);
    person.add(entry.mesh);
    shown = i;
    test.framesShown++;
    test.shownAtTick = test.ticks;
    if (test.shownLog.length < 1000) test.shownLog.push(i);
  }
  return true;
}

// -- the source video beside the splats --------------------------------------------------------
const video = $("source");
let videoOn = false;
if (view.video) {
  video.src = view.video;
  $("side-label").hidden = false;
  $("side").checked = view.side_by_side;
  video.addEventListener("error", () => {
    warn("The source video cannot be played in this browser");
    $("side-label").hidden = true;
    setVideo(false);
  });
}
function setVideo(on) {
  videoOn = on && Boolean(view.video);
  video.hidden = !videoOn;
  if (videoOn) syncVideo(true); else video.pause();
  requestAnimationFrame(resize);
}
function syncVideo(force) {
  if (!videoOn) return;
  video.playbackRate = speed;
  if (force || Math.abs(video.currentTime - clock) > RESYNC_S * Math.max(1, speed)) video.currentTime = clock;
  if (playing && video.paused) video.play().catch(() => {});
  if (!playing && !video.paused) video.pause();
}

// -- clock and controls ---------------------------------------------------------------------
let clock = t0, playing = frames.length > 1, loop = view.loop, speed = 1, last = performance.now();
let dragging = false;
let waiting = false; // the last tick held the clock for a frame still loading

const slider = $("time");
slider.min = t0; slider.max = tEnd; slider.value = t0;
$("loop").checked = loop;

function setPlaying(on) {
  playing = on && frames.length > 1;
  if (playing && clock >= tEnd - 1e-6) clock = t0; // play again from the start
  $("play").textContent = playing ? "Pause" : "Play";
  syncVideo(true);
}
function seek(t) {
  clock = Math.min(Math.max(t, t0), tEnd - 1e-6);
  current = frameAt(clock);
  syncVideo(true);
}
function step(by) {
  setPlaying(false);
  let i = frameAt(clock) + by;
  if (i < 0) i = loop ? frames.length - 1 : 0;
  if (i >= frames.length) i = loop ? 0 : frames.length - 1;
  seek(frames[i].t);
}

$("play").onclick = () => setPlaying(!playing);
$("prev").onclick = () => step(-1);
$("next").onclick = () => step(1);
$("reset").onclick = resetView;
$("loop").onchange = (e) => { loop = e.target.checked; };
$("speed").onchange = (e) => { speed = Number(e.target.value); syncVideo(false); };
$("side").onchange = (e) => setVideo(e.target.checked);
slider.addEventListener("input", () => { dragging = true; seek(Number(slider.value)); });
slider.addEventListener("change", () => { dragging = false; });
window.addEventListener("keydown", (e) => {
  if (e.target instanceof HTMLInputElement && e.target.type !== "checkbox" && e.target.type !== "range") return;
  if (e.key === " ") { setPlaying(!playing); e.preventDefault(); }
  else if (e.key === "ArrowLeft") { step(-1); e.preventDefault(); }
  else if (e.key === "ArrowRight") { step(1); e.preventDefault(); }
  else if (e.key === "r") resetView();
});

function tick(now) {
  const dt = Math.min(0.25, (now - last) / 1000); // a background tab does not jump ahead
  last = now;
  test.ticks++;
  // While the frame the clock reaches is still loading, the clock waits for it (as a video
  // player buffers) instead of skipping ahead; a slow renderer still drops frames, in time.
  const buffering = playing && test.ready && !settled(current);
  const arrived = waiting && !buffering; // the awaited frame: shown before the clock moves on
  waiting = buffering;
  if (playing && test.ready && !buffering && !arrived) {
    clock += dt * speed;
    if (clock >= tEnd) {
      if (loop) { clock = t0 + ((clock - tEnd) % span); syncVideo(true); }
      else { clock = tEnd - 1e-6; setPlaying(false); }
    }
    syncVideo(false);
  }
  if (buffering) test.stalls++;
  current = frameAt(clock);
  requestAhead();
  show(current);
  if (!test.ready && shown >= 0) { test.ready = true; status(""); }
  status(!test.ready ? "Loading..." : settled(current) ? "" : "Buffering...");
  if (!dragging) slider.value = clock;
  $("clock").textContent = `${(clock - t0).toFixed(2)} / ${span.toFixed(2)} s`;
  controls.update();
  renderer.render(scene, camera);
}

Object.assign(window.volumeView, {
  play: () => setPlaying(true),
  pause: () => setPlaying(false),
  seek,
  resetView,
  // A point in the files' (OpenCV) frame -> CSS pixels on the canvas, with the page's camera.
  project: ([x, y, z]) => {
    const p = new THREE.Vector3(x, -y, -z).project(camera);
    return [(p.x + 1) / 2 * canvas.clientWidth, (1 - p.y) / 2 * canvas.clientHeight];
  },
  state: () => {
    const p = target.clone().project(camera);
    return {
      clock, frame: current, shown, playing, loop, speed, videoOn,
      frames: frames.length, loaded: [...cache.values()].filter((e) => e.state === "ready").length,
      // where the orbit centre (the head) lands on the canvas, in CSS pixels
      target_px: [(p.x + 1) / 2 * canvas.clientWidth, (1 - p.y) / 2 * canvas.clientHeight],
      canvas: [canvas.clientWidth, canvas.clientHeight],
    };
  },
});
setPlaying(playing);
if (view.video && view.side_by_side) setVideo(true);
renderer.setAnimationLoop(tick);
