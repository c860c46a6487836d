// Original file: proto/florence2/v1/florence2.proto


export interface GetModelInfoRequest {
}

export interface GetModelInfoRequest__Output {
}
