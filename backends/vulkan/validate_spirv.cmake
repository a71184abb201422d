# cmake -DVALIDATOR=<spirv-val> -DLIB_DIR=<its lib folder> -DSPIRV=<module> -P validate_spirv.cmake
# Validates a compiled SPIR-V module for Vulkan 1.1; an invalid one is
# deleted (so that no later build embeds it) and the build stops with
# spirv-val's message.
execute_process(
  COMMAND ${CMAKE_COMMAND} -E env LD_LIBRARY_PATH=${LIB_DIR} ${VALIDATOR} --target-env vulkan1.1
          ${SPIRV}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  file(REMOVE ${SPIRV})
  message(FATAL_ERROR "${SPIRV} is not valid SPIR-V (spirv-val):\n${out}${err}")
endif()
