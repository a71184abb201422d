/* The efla OpenCL program: every kernel of one storage dtype and tile class. */
#include "efla_common.cl"
#include "efla_recurrent.cl"
#ifdef EFLA_NVMMA /* NVIDIA sm_80+ only: inline PTX tensor-core products */
#include "efla_nvmma_common.cl"
#endif
#include "efla_chunk_prepare.cl"
#include "efla_chunk_output.cl"
#ifdef EFLA_NVMMA
#include "efla_nvmma_output.cl"
#include "efla_nvmma_prepare.cl"
#endif

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

#ifdef EFLA_NVMMA /* the nvmma state scan: WARPS 1, 2, 4 x largest Dk 128, 256 */
#define EFLA_NS_DK 128
#define EFLA_NS_WARPS 1
#include "efla_nvmma_state.cl"
#undef EFLA_NS_WARPS
#define EFLA_NS_WARPS 2
#include "efla_nvmma_state.cl"
#undef EFLA_NS_WARPS
#define EFLA_NS_WARPS 4
#include "efla_nvmma_state.cl"
#undef EFLA_NS_WARPS
#undef EFLA_NS_DK
#define EFLA_NS_DK 256
#define EFLA_NS_WARPS 1
#include "efla_nvmma_state.cl"
#undef EFLA_NS_WARPS
#define EFLA_NS_WARPS 2
#include "efla_nvmma_state.cl"
#undef EFLA_NS_WARPS
#define EFLA_NS_WARPS 4
#include "efla_nvmma_state.cl"
#undef EFLA_NS_WARPS
#undef EFLA_NS_DK
#endif
