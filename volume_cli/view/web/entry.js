// The one module the viewer page imports: three.js, its orbit controls, and Spark's splat renderer,
// bundled into a single file so the page needs no import map and nothing from a CDN.
export * as THREE from "three";
export { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";
export { SparkRenderer, SplatMesh, SplatFileType } from "@sparkjsdev/spark";
