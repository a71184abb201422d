/* The efla OpenCL program: every kernel of one storage dtype and tile class. */
#include "efla_common.cl"
#include "efla_recurrent.cl"
#include "efla_chunk_prepare.cl"
#include "efla_chunk_output.cl"

/* The state scan, once per Dv tile width. */
#define EFLA_DVT 8
#include "efla_chunk_state.cl"
#undef EFLA_DVT
#define EFLA_DVT 16
#include "efla_chunk_state.cl"
#undef EFLA_DVT
#define EFLA_DVT 32
#include "efla_chunk_state.cl"
#undef EFLA_DVT

/* The nvmma kernels (NVIDIA sm_80+ only: inline PTX tensor-core products),
 * for the tile class of chunk 64 and 256 items. The state scan per
 * (largest Dk, groups, parts): Dk 128 with 1, 2, 4 groups of 2 parts and
 * 1, 2 groups of 4; Dk 256 with 1, 2 groups of 4 (fewer registers per
 * warp). The host's table (opencl_plan.c) lists the same. */
#if defined(EFLA_NVMMA) && EFLA_CHUNK == EFLA_NV_CHUNK && EFLA_WG == EFLA_NV_PREPARE_ITEMS
#include "efla_nvmma_common.cl"
#include "efla_nvmma_prepare.cl"
#include "efla_nvmma_output.cl"
#define EFLA_NS_DK 128
#define EFLA_NS_PARTS 2
#define EFLA_NS_GROUPS 1
#include "efla_nvmma_state.cl"
#undef EFLA_NS_GROUPS
#define EFLA_NS_GROUPS 2
#include "efla_nvmma_state.cl"
#undef EFLA_NS_GROUPS
#define EFLA_NS_GROUPS 4
#include "efla_nvmma_state.cl"
#undef EFLA_NS_GROUPS
#undef EFLA_NS_PARTS
#define EFLA_NS_PARTS 4
#define EFLA_NS_GROUPS 1
#include "efla_nvmma_state.cl"
#undef EFLA_NS_GROUPS
#define EFLA_NS_GROUPS 2
#include "efla_nvmma_state.cl"
#undef EFLA_NS_GROUPS
#undef EFLA_NS_DK
#define EFLA_NS_DK 256
#define EFLA_NS_GROUPS 1
#include "efla_nvmma_state.cl"
#undef EFLA_NS_GROUPS
#define EFLA_NS_GROUPS 2
#include "efla_nvmma_state.cl"
#undef EFLA_NS_GROUPS
#undef EFLA_NS_PARTS
#undef EFLA_NS_DK
#endif
