# cmake -DNVCC=... -DSOURCE=x.cu -DOUTPUT=x.fatbin -DREPORT=x.txt -DINCLUDE=dir
#       "-DGENCODE=-gencode=...;-gencode=..." -P nvcc_fatbin.cmake
# Runs nvcc --fatbin and keeps ptxas's --resource-usage report (registers,
# spills, shared memory per kernel and target) beside the fatbin. -lineinfo:
# profilers (ncu) map the kernels to source lines; no effect on the code.
execute_process(
  COMMAND ${NVCC} --fatbin -std=c++17 -O3 -lineinfo --resource-usage ${GENCODE} -I${INCLUDE}
          -o ${OUTPUT} ${SOURCE}
  RESULT_VARIABLE result
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err)
file(WRITE ${REPORT} "${out}${err}")
if(NOT result EQUAL 0)
  message(FATAL_ERROR "nvcc failed on ${SOURCE}:\n${err}")
endif()
