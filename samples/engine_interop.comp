#version 450
// The sample engine's own compute work around EFLA: MODE 0 fills v with a
// pattern that is exact in f32; MODE 1 post-processes EFLA's output
// (dst = 2 * src + 1).
layout(local_size_x = 64) in;
layout(constant_id = 0) const uint MODE = 0;
layout(std430, binding = 0) readonly buffer Src { float src[]; };
layout(std430, binding = 1) writeonly buffer Dst { float dst[]; };
layout(push_constant) uniform Push { uint count; } pc;

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i >= pc.count) return;
    if (MODE == 0u) dst[i] = float(int((i * 37u) % 101u) - 50) * 0.015625;
    else dst[i] = src[i] * 2.0 + 1.0;
}
