"""Offscreen OpenGL rendering (moderngl on EGL) for OpenCV-convention cameras.

Cameras follow :mod:`volume_cli.camera`: ``K`` [3, 3] with pixel centres at +0.5 and the principal
point of a W x H image at (W / 2, H / 2); ``world_to_camera`` [4, 4] maps world points to the
OpenCV camera frame (x right, y down, z forward, metres). :func:`opengl_projection` turns K into the
clip-space matrix so that a world point lands on exactly the pixel :func:`volume_cli.camera.project`
gives, and rows come back top first (row 0 = image top), so no flip on read-back.

Outputs of :meth:`Renderer.render`: colour premultiplied by alpha (float32 [H, W, 3], sRGB-encoded,
composite as ``rgb + (1 - alpha) * background``), alpha (float32 [H, W], 4x multisampled so edges
and hair are fractional), and depth (float32 [H, W], camera z in metres at each pixel CENTRE, 0 where
nothing with alpha >= 0.5 is hit).

EGL: Mesa (llvmpipe) on CPU machines, NVIDIA's EGL on GPU machines; glcontext finds libEGL/libGL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

# Vertex layout: position 3, normal 3, colour rgba 4, uv 2, aux 3, material 4 = 19 float32.
# material = (kind, specular, shininess, ambient occlusion). aux: skin/cloth -> rest position (the
# procedural texture sticks to the person across views and expressions); eye -> direction from the
# eyeball centre in gaze coordinates (+z = gaze); hair -> the strand's tangent (world frame, root to
# tip), and its material.w holds the card's random seed instead of an occlusion. uv: hair -> card
# coordinates; skin -> (freckle density, stubble density); eye -> (pupil angular radius, unused).
VERTEX_FLOATS = 19
KIND_SKIN, KIND_EYE, KIND_HAIR, KIND_LENS, KIND_PLAIN, KIND_CLOTH = 0, 1, 2, 3, 4, 5
MAX_LIGHTS = 4
SAMPLES = 4  # MSAA samples for colour and alpha

_VERTEX_SHADER = """
#version 330
uniform mat4 u_mvp;
uniform mat4 u_w2c;
in vec3 in_pos; in vec3 in_nrm; in vec4 in_col; in vec2 in_uv; in vec3 in_aux; in vec4 in_mat;
out vec3 v_pos; out vec3 v_nrm; out vec4 v_col; out vec2 v_uv; out vec3 v_aux; out vec4 v_mat; out float v_z;
flat out int v_kind;
void main() {
    gl_Position = u_mvp * vec4(in_pos, 1.0);
    v_z = (u_w2c * vec4(in_pos, 1.0)).z;
    v_kind = int(in_mat.x + 0.5);
    v_pos = in_pos; v_nrm = in_nrm; v_col = in_col; v_uv = in_uv; v_aux = in_aux; v_mat = in_mat;
}
"""

_FRAGMENT_SHADER = """
#version 330
uniform int u_depth_pass;
uniform vec3 u_cam_pos;
uniform vec3 u_light_dir[4];
uniform vec3 u_light_col[4];
uniform vec3 u_sky; uniform vec3 u_ground;
uniform float u_skin_noise; uniform float u_cloth_scale;
uniform vec3 u_skin_detail;  // moles, shine variation, unused
uniform vec3 u_hair_col;  // linear albedo of stubble
in vec3 v_pos; in vec3 v_nrm; in vec4 v_col; in vec2 v_uv; in vec3 v_aux; in vec4 v_mat; in float v_z;
flat in int v_kind;
out vec4 f_out;

float hash13(vec3 p) { p = fract(p * 0.1031); p += dot(p, p.zyx + 31.32); return fract((p.x + p.y) * p.z); }
float hash11(float x) { return fract(sin(x * 127.1) * 43758.5453); }
float vnoise(vec3 p) {
    vec3 i = floor(p); vec3 f = fract(p); f = f * f * (3.0 - 2.0 * f);
    float a = mix(mix(hash13(i), hash13(i + vec3(1,0,0)), f.x), mix(hash13(i + vec3(0,1,0)), hash13(i + vec3(1,1,0)), f.x), f.y);
    float b = mix(mix(hash13(i + vec3(0,0,1)), hash13(i + vec3(1,0,1)), f.x), mix(hash13(i + vec3(0,1,1)), hash13(i + vec3(1,1,1)), f.x), f.y);
    return mix(a, b, f.z);
}

float luma(vec3 c) { return dot(c, vec3(0.2126, 0.7152, 0.0722)); }

void main() {
    int kind = v_kind;  // flat: a triangle straddling two materials takes one, never a third
    vec3 albedo = v_col.rgb;
    float alpha = v_col.a;
    if (kind == 2) {  // hair card: strands across u; a filled clump near the root, alpha-tapered tips
        // v_col.a: the card's density (inner layers are fuller: they hide the scalp between cards)
        float seed = v_mat.w;
        float n = 11.0;
        float k = floor(v_uv.x * n);
        float r = hash11(k + 13.0 * seed);
        float s = fract(v_uv.x * n);
        float width = 0.5 + 0.45 * r;
        float strand = 1.0 - smoothstep(width * 0.5 - 0.1, width * 0.5 + 0.15, abs(s - 0.5));
        float stop = 0.55 + 0.45 * r;  // strands end between 55 % and 100 % of the card: ragged tips
        float tip = 1.0 - smoothstep(stop - 0.35, stop, v_uv.y);
        float fill = 1.0 - smoothstep(0.1, 0.7, v_uv.y);
        float edge = smoothstep(0.0, 0.15, v_uv.x) * smoothstep(0.0, 0.15, 1.0 - v_uv.x);
        alpha = mix(strand, 1.0, max(0.65 * fill, 0.7 * v_col.a)) * tip * edge;
        albedo *= (0.85 + 0.3 * r) * mix(0.5, 1.0, smoothstep(0.0, 0.45, v_uv.y));  // darker roots: self-shadow
    }
    if (u_depth_pass == 1) {
        if (alpha < 0.5) discard;
        f_out = vec4(v_z, 0.0, 0.0, 1.0);
        return;
    }
    vec3 n = normalize(v_nrm);
    vec3 view = normalize(u_cam_pos - v_pos);
    if (dot(n, view) < 0.0) n = -n;
    float spec_mod = 1.0;
    if (kind == 0) {  // skin: pores, blotches, redness, freckles, moles and stubble, in the rest frame
        // v_uv: (freckle density, stubble density) for skin (see scene.py)
        float fine = vnoise(v_aux * 900.0) - 0.5;
        float blotch = vnoise(v_aux * 45.0) - 0.5;
        float red = vnoise(v_aux * 22.0 + 7.3) - 0.5;
        albedo *= 1.0 + u_skin_noise * (0.5 * fine + 1.0 * blotch);
        albedo *= vec3(1.0 + 0.8 * u_skin_noise * red, 1.0 - 0.4 * u_skin_noise * red, 1.0 - 0.4 * u_skin_noise * red);
        if (v_uv.x > 0.01) {  // freckles: 3 mm cells, some holding a soft brown spot
            vec3 q = v_aux * 330.0;
            float h = hash13(floor(q));
            float d = length(fract(q) - 0.5 - 0.25 * (vec3(hash13(floor(q) + 5.1), hash13(floor(q) + 9.7), 0.0) - 0.5));
            float spot = step(h, 0.55 * v_uv.x) * (1.0 - smoothstep(0.12, 0.32, d));
            albedo *= mix(vec3(1.0), vec3(0.72, 0.62, 0.58), spot * (0.5 + 0.5 * hash13(floor(q) + 2.3)));
        }
        if (u_skin_detail.x > 0.0) {  // moles: a few 2-4 mm dark spots (2.5 cm cells)
            vec3 q = v_aux * 40.0;
            float h = hash13(floor(q) + 17.0);
            float d = length(fract(q) - 0.5);
            float mole = step(h, 0.025 * u_skin_detail.x) * (1.0 - smoothstep(0.04, 0.07, d));
            albedo *= mix(vec3(1.0), vec3(0.45, 0.35, 0.32), mole);
        }
        // shine varies over the face (oily and dry patches), and pores break up the highlight
        spec_mod = clamp(1.0 + u_skin_detail.y * 3.0 * (blotch + 0.6 * red), 0.15, 2.0);
        n = normalize(n + 0.18 * vec3(fine, blotch, -fine));
        if (v_uv.y > 0.01) {  // stubble: dark hair dots (0.8 mm cells) with more where denser
            float dots = vnoise(v_aux * 1250.0 + 3.1);
            float hairs = smoothstep(1.05 - v_uv.y, 1.3 - v_uv.y, dots + 0.25 * v_uv.y);
            albedo = mix(albedo, u_hair_col * (0.7 + 0.6 * dots), hairs * min(1.0, 0.5 + v_uv.y));
            spec_mod *= 1.0 - 0.7 * hairs;
            n = normalize(n + 0.3 * hairs * vec3(dots - 0.5, fine, 0.0));
        }
    } else if (kind == 5) {  // cloth: a weave
        float w = vnoise(v_aux * u_cloth_scale) - 0.5;
        albedo *= 1.0 + 0.25 * w;
    } else if (kind == 1) {  // eye: pupil, iris with radial fibres and a dark limbus, sclera
        vec3 d = normalize(v_aux);
        float t = acos(clamp(d.z, -1.0, 1.0));
        float ang = atan(d.y, d.x);
        float pupil = v_uv.x > 0.0 ? v_uv.x : 0.18;  // angular radius, per person
        float iris = 0.52;  // an 11.7 mm iris on a 12 mm eyeball: the lids cut it, no sclera above it
        vec3 sclera = vec3(0.42, 0.39, 0.36) * mix(vec3(1.0), vec3(1.08, 0.9, 0.88), smoothstep(0.3, 0.9, abs(d.x)));
        float fib = 0.75 + 0.5 * hash11(floor(ang * 40.0)) * (0.6 + 0.4 * hash11(floor(ang * 13.0) + 3.0));
        vec3 irisc = albedo * fib * mix(1.2, 0.3, smoothstep(iris - 0.12, iris, t)) * mix(0.7, 1.0, smoothstep(pupil, pupil + 0.08, t));
        albedo = t < pupil ? vec3(0.01) : (t < iris ? irisc : sclera * mix(0.75, 1.0, smoothstep(iris, 1.0, t)));
    }
    float ao = kind == 2 ? 1.0 : v_mat.w;
    float ndv = max(dot(n, view), 0.0);
    // hemisphere ambient: sky from above (-y in the OpenCV world is up)
    vec3 ambient = mix(u_ground, u_sky, 0.5 - 0.5 * n.y);
    vec3 color = albedo * ambient * ao;
    // wrap lighting: skin scatters red light furthest past the terminator; hair is translucent
    vec3 wrap = kind == 0 ? vec3(0.45, 0.22, 0.15) : (kind == 2 ? vec3(0.5) : vec3(0.0));
    vec3 tangent = normalize(v_aux + vec3(1e-6));
    float grazing = pow(1.0 - ndv, 4.0);
    float fres = 1.0 + 3.0 * grazing;  // skin's highlight grows at grazing angles (Fresnel)
    for (int i = 0; i < 4; i++) {
        vec3 l = u_light_dir[i];
        float ndl = dot(n, l);
        vec3 diff = max((vec3(ndl) + wrap) / (1.0 + wrap), 0.0);
        vec3 h = normalize(l + view);
        float ndh = max(dot(n, h), 0.0);
        vec3 spec;
        if (kind == 2) {  // Kajiya-Kay: a white primary lobe and a coloured, shifted secondary one
            float t1 = dot(normalize(tangent + 0.15 * n), h);
            float t2 = dot(normalize(tangent - 0.15 * n), h);
            float s1 = pow(max(1.0 - t1 * t1, 0.0), 45.0);  // sin^90
            float s2 = pow(max(1.0 - t2 * t2, 0.0), 12.0);  // sin^24
            spec = v_mat.y * (vec3(s1) + 0.45 * s2 * albedo / max(luma(albedo), 0.02)) * smoothstep(-0.3, 0.3, ndl);
            diff *= mix(0.55, 1.0, v_uv.y);
        } else if (kind == 0) {  // a sharp oily lobe and a broad sheen
            float broad = pow(ndh, 0.5 * v_mat.z);
            float sharp = broad * broad;
            sharp *= sharp * broad;  // ndh^(2.5 shininess)
            spec = vec3(v_mat.y * spec_mod * (sharp + 0.15 * broad) * fres * smoothstep(0.0, 0.2, ndl));
        } else {
            spec = vec3(v_mat.y * pow(ndh, v_mat.z) * (ndl > 0.0 ? 1.0 : 0.0));
        }
        color += u_light_col[i] * (albedo * diff * mix(0.6, 1.0, ao) + spec);
    }
    if (kind == 0) color += 0.15 * grazing * ambient * ao;  // soft rim sheen (fine hairs)
    if (kind == 4) color = albedo;
    if (kind == 3) {  // lens: reflections make it visible, mostly see-through
        float fres = pow(1.0 - ndv, 3.0);
        alpha = clamp(alpha + 0.6 * fres, 0.0, 1.0);
    }
    // a camera's soft shoulder instead of a hard clip: linear to 0.75, then rolling off to 1
    vec3 over = max(color - 0.75, 0.0);
    color = min(color, 0.75) + 0.25 * (1.0 - exp(-over / 0.25));
    color = pow(clamp(color, 0.0, 1.0), vec3(1.0 / 2.2));
    f_out = vec4(color, alpha);
}
"""


class EGLUnavailableError(RuntimeError):
    """No EGL/OpenGL 3.3 context could be created."""


@dataclass
class DrawMesh:
    """Triangles ready to draw. vertices: [N, 19] float32 (layout above, world frame, metres);
    triangles: [T, 3] int32. ``transparent`` meshes are drawn after opaque ones, back to front."""

    vertices: np.ndarray
    triangles: np.ndarray
    transparent: bool = False


@dataclass
class Lighting:
    """Directional lights in the WORLD frame (direction towards the light, unit) and ambient."""

    directions: np.ndarray  # [L, 3], L <= 4
    colors: np.ndarray  # [L, 3], linear RGB intensity
    sky: np.ndarray = field(default_factory=lambda: np.array([0.25, 0.25, 0.27]))
    ground: np.ndarray = field(default_factory=lambda: np.array([0.12, 0.11, 0.10]))


@dataclass
class RenderResult:
    rgb: np.ndarray  # [H, W, 3] float32, premultiplied by alpha
    alpha: np.ndarray  # [H, W] float32
    depth: np.ndarray  # [H, W] float32, camera z in metres at pixel centres, 0 = background


def opengl_projection(K: np.ndarray, width: int, height: int, near: float, far: float) -> np.ndarray:
    """[4, 4] clip matrix for OpenCV camera coordinates (z forward) and intrinsics K.

    x_ndc = 2 u / W - 1 and y_ndc = 2 v / H - 1 where (u, v) = project(K, X) with pixel centres at
    +0.5: GL's viewport puts NDC -1 at the left/bottom EDGE of the first pixel, so GL pixel i has its
    centre at u = i + 0.5, the same convention. y is NOT negated, so the first row GL stores (its
    "bottom") is image row 0 (the top): read-back needs no flip, and triangles' winding appears
    mirrored (culling stays off). Depth: z = near -> -1, z = far -> +1, w_clip = z.
    Example: K = intrinsics(100, 100, 32, 32), W = H = 64: the point (0, 0, 1) -> NDC (0, 0).
    """
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    P = np.zeros((4, 4), dtype=np.float64)
    P[0, 0] = 2.0 * fx / width
    P[0, 1] = 2.0 * K[0, 1] / width
    P[0, 2] = 2.0 * cx / width - 1.0
    P[1, 1] = 2.0 * fy / height
    P[1, 2] = 2.0 * cy / height - 1.0
    P[2, 2] = (far + near) / (far - near)
    P[2, 3] = -2.0 * far * near / (far - near)
    P[3, 2] = 1.0
    return P


@lru_cache(maxsize=1)
def _context():
    try:
        import moderngl
    except ImportError as exc:
        raise EGLUnavailableError("moderngl is not installed; run scripts/install_synth_deps.sh") from exc
    try:
        ctx = moderngl.create_context(standalone=True, backend="egl", require=330)
    except Exception as exc:  # glcontext raises plain Exceptions for a missing libEGL or display
        raise EGLUnavailableError(
            f"cannot create an EGL OpenGL 3.3 context ({exc}); install libegl1 libgl1 libegl-mesa0 "
            "libgl1-mesa-dri (scripts/install_synth_deps.sh)"
        ) from exc
    return ctx


def egl_status() -> tuple[bool, str]:
    """(available, reason): whether an offscreen EGL context can be created here."""
    try:
        ctx = _context()
    except EGLUnavailableError as exc:
        return False, str(exc)
    return True, f"{ctx.info['GL_RENDERER']} / {ctx.info['GL_VERSION']}"


class Renderer:
    """One EGL context and shader program per process; framebuffers cached per image size.

    Not fork-safe: create it inside each data-loader worker (the dataset does)."""

    def __init__(self) -> None:
        import moderngl

        self._mgl = moderngl
        self.ctx = _context()
        self.prog = self.ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
        self._fbos: dict[tuple[int, int], tuple] = {}

    def _targets(self, width: int, height: int):
        key = (width, height)
        if key not in self._fbos:
            ctx = self.ctx
            ms = ctx.framebuffer(
                color_attachments=[ctx.renderbuffer((width, height), 4, samples=SAMPLES)],
                depth_attachment=ctx.depth_renderbuffer((width, height), samples=SAMPLES),
            )
            resolved = ctx.framebuffer(color_attachments=[ctx.renderbuffer((width, height), 4)])
            depth = ctx.framebuffer(
                color_attachments=[ctx.renderbuffer((width, height), 1, dtype="f4")],
                depth_attachment=ctx.depth_renderbuffer((width, height)),
            )
            self._fbos[key] = (ms, resolved, depth)
        return self._fbos[key]

    def render(
        self,
        meshes: list[DrawMesh],
        K: np.ndarray,
        world_to_camera: np.ndarray,
        width: int,
        height: int,
        lighting: Lighting,
        *,
        skin_noise: float = 0.15,
        cloth_scale: float = 400.0,
        skin_detail: tuple[float, float] = (0.0, 0.5),
        hair_color: tuple[float, float, float] = (0.05, 0.04, 0.03),
        near: float = 0.02,
        far: float = 20.0,
    ) -> RenderResult:
        """Render ``meshes`` seen by camera (K [3, 3], world_to_camera [4, 4]) into W x H images.

        skin_detail: (moles, shine variation), both in [0, 1]; hair_color: linear albedo [3] of
        stubble (skin vertices with a stubble density in their uv.y)."""
        if K.shape != (3, 3):
            raise ValueError(f"K must be [3, 3], got {K.shape}")
        if world_to_camera.shape != (4, 4):
            raise ValueError(f"world_to_camera must be [4, 4], got {world_to_camera.shape}")
        ctx, prog, mgl = self.ctx, self.prog, self._mgl
        ms, resolved, depth_fbo = self._targets(width, height)
        P = opengl_projection(K, width, height, near, far)
        mvp = (P @ world_to_camera).astype(np.float32)
        cam_pos = -world_to_camera[:3, :3].T @ world_to_camera[:3, 3]
        prog["u_mvp"].write(mvp.T.tobytes())  # GL matrices are column-major
        prog["u_w2c"].write(world_to_camera.astype(np.float32).T.tobytes())
        self._set(prog, "u_cam_pos", tuple(cam_pos))
        dirs = np.zeros((MAX_LIGHTS, 3), np.float32)
        cols = np.zeros((MAX_LIGHTS, 3), np.float32)
        n = min(MAX_LIGHTS, len(lighting.directions))
        dirs[:n] = lighting.directions[:n]
        cols[:n] = lighting.colors[:n]
        prog["u_light_dir"].write(dirs.tobytes())
        prog["u_light_col"].write(cols.tobytes())
        self._set(prog, "u_sky", tuple(np.asarray(lighting.sky, np.float32)))
        self._set(prog, "u_ground", tuple(np.asarray(lighting.ground, np.float32)))
        self._set(prog, "u_skin_noise", float(skin_noise))
        self._set(prog, "u_cloth_scale", float(cloth_scale))
        self._set(prog, "u_skin_detail", (float(skin_detail[0]), float(skin_detail[1]), 0.0))
        self._set(prog, "u_hair_col", tuple(float(c) for c in hair_color))

        opaque = [m for m in meshes if not m.transparent and len(m.triangles)]
        clear = [m for m in meshes if m.transparent and len(m.triangles)]
        vaos = []
        try:
            opaque_vao = self._vao([m for m in opaque])
            vaos.append(opaque_vao)
            clear_vao = None
            if clear:
                clear_vao = self._vao(clear, sort_for=world_to_camera)
                vaos.append(clear_vao)
            ctx.enable(mgl.DEPTH_TEST)
            ctx.disable(mgl.CULL_FACE)
            # Colour pass (multisampled): opaque, then transparent with depth writes off.
            ms.use()
            ms.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            self._set(prog, "u_depth_pass", 0)
            ctx.disable(mgl.BLEND)
            if opaque_vao is not None:
                opaque_vao.render(mgl.TRIANGLES)
            if clear_vao is not None:
                ctx.enable(mgl.BLEND)
                # premultiplied accumulation onto a transparent target
                ctx.blend_func = (mgl.SRC_ALPHA, mgl.ONE_MINUS_SRC_ALPHA, mgl.ONE, mgl.ONE_MINUS_SRC_ALPHA)
                ms.depth_mask = False
                clear_vao.render(mgl.TRIANGLES)
                ms.depth_mask = True
                ctx.disable(mgl.BLEND)
            ctx.copy_framebuffer(resolved, ms)
            rgba = np.frombuffer(resolved.read(components=4, dtype="f1"), np.uint8).reshape(height, width, 4)
            # Depth pass (one sample at each pixel centre): camera z of the nearest alpha >= 0.5 surface.
            depth_fbo.use()
            depth_fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            self._set(prog, "u_depth_pass", 1)
            for vao in vaos:
                if vao is not None:
                    vao.render(mgl.TRIANGLES)
            depth = np.frombuffer(depth_fbo.read(components=1, dtype="f4"), np.float32).reshape(height, width)
        finally:
            for vao in vaos:
                if vao is not None:
                    vao._volume_buffers[0].release()
                    vao._volume_buffers[1].release()
                    vao.release()
        rgba = rgba.astype(np.float32) / 255.0
        return RenderResult(rgb=rgba[..., :3].copy(), alpha=rgba[..., 3].copy(), depth=depth.copy())

    @staticmethod
    def _set(prog, name: str, value) -> None:
        if name in prog:
            prog[name].value = value

    def _vao(self, meshes: list[DrawMesh], sort_for: np.ndarray | None = None):
        if not meshes:
            return None
        verts, tris, offset = [], [], 0
        for m in meshes:
            verts.append(m.vertices)
            tris.append(m.triangles + offset)
            offset += len(m.vertices)
        v = np.concatenate(verts).astype(np.float32)
        t = np.concatenate(tris).astype(np.int32)
        if sort_for is not None:  # back to front by the camera z of each triangle's centroid
            z = (v[t, :3].mean(axis=1) @ sort_for[2, :3].astype(np.float32)) + np.float32(sort_for[2, 3])
            t = t[np.argsort(-z, kind="stable")]
        vbo = self.ctx.buffer(v.tobytes())
        ibo = self.ctx.buffer(t.tobytes())
        vao = self.ctx.vertex_array(
            self.prog,
            [(vbo, "3f 3f 4f 2f 3f 4f", "in_pos", "in_nrm", "in_col", "in_uv", "in_aux", "in_mat")],
            index_buffer=ibo,
            index_element_size=4,
        )
        vao._volume_buffers = (vbo, ibo)
        return vao


def pack_vertices(
    positions: np.ndarray,
    normals: np.ndarray,
    colors: np.ndarray,
    *,
    uv: np.ndarray | None = None,
    aux: np.ndarray | None = None,
    kind: int = KIND_SKIN,
    specular: float | np.ndarray = 0.1,
    shininess: float = 20.0,
    ao: np.ndarray | float = 1.0,
) -> np.ndarray:
    """Build the [N, 19] vertex array. positions, normals [N, 3]; colors [N, 3] or [N, 4] (alpha)."""
    n = len(positions)
    out = np.zeros((n, VERTEX_FLOATS), np.float32)
    out[:, 0:3] = positions
    out[:, 3:6] = normals
    if colors.shape[1] == 3:
        out[:, 6:9] = colors
        out[:, 9] = 1.0
    else:
        out[:, 6:10] = colors
    if uv is not None:
        out[:, 10:12] = uv
    if aux is not None:
        out[:, 12:15] = aux
    out[:, 15] = kind
    out[:, 16] = specular
    out[:, 17] = shininess
    out[:, 18] = ao
    return out


def vertex_normals(positions: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals [N, 3] (unit; zero-area vertices get +z)."""
    p = positions[triangles]
    fn = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    n = np.zeros_like(positions)
    for k in range(3):
        for c in range(3):
            n[:, c] += np.bincount(triangles[:, k], weights=fn[:, c], minlength=len(positions))
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    n = np.where(norm > 1e-12, n / np.maximum(norm, 1e-12), np.array([0.0, 0.0, 1.0]))
    return n
